"""Re-point every ``[`name`](../minirlhf/ppo.py#Lnn)`` link of docs/ppo.md at the line that shows
``name`` (its def or class first), after ppo.py changed:  python docs/fix_links.py
tests/test_docs.py checks the links."""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC, SRC = ROOT / "docs" / "ppo.md", (ROOT / "minirlhf" / "ppo.py").read_text().splitlines()


def line_of(name: str) -> int:
    for pattern in (f"def {name}(", f"class {name}", f"{name} =", f"{name}:", name):
        for i, line in enumerate(SRC, 1):
            if pattern in line:
                return i
    sys.exit(f"docs/ppo.md links {name!r}, which minirlhf/ppo.py no longer has")


if __name__ == "__main__":
    link = re.compile(r"\[`([^`]+)`\]\(\.\./minirlhf/ppo\.py#L\d+\)")
    DOC.write_text(link.sub(lambda m: f"[`{m.group(1)}`](../minirlhf/ppo.py#L{line_of(m.group(1))})", DOC.read_text()))
