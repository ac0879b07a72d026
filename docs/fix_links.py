"""Re-point every ``[`name`](../minirlhf/FILE.py#Lnn)`` link of docs/ppo.md at the line of FILE that
shows ``name`` (its def or class first), after the code changed:  python docs/fix_links.py
tests/test_docs.py checks the links."""
import re
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ppo.md"


@cache
def source(path: str) -> list[str]:
    return (ROOT / path).read_text().splitlines()


def line_of(name: str, path: str = "minirlhf/ppo.py") -> int:
    for pattern in (f"def {name}(", f"class {name}", f"{name} =", f"{name}:", name):
        for i, line in enumerate(source(path), 1):
            if pattern in line:
                return i
    sys.exit(f"docs/ppo.md links {name!r}, which {path} no longer has")


if __name__ == "__main__":
    link = re.compile(r"\[`([^`]+)`\]\(\.\./(minirlhf/[\w/]+\.py)#L\d+\)")
    DOC.write_text(link.sub(lambda m: f"[`{m.group(1)}`](../{m.group(2)}#L{line_of(m.group(1), m.group(2))})",
                            DOC.read_text()))
