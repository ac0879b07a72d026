"""docs/ppo.md links each PPO detail to the line that implements it; the links must stay true."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_ppo_doc_link_points_at_its_code():
    text = (ROOT / "docs" / "ppo.md").read_text()
    links = re.findall(r"\[`([^`]+)`\]\(\.\./(minirlhf/[\w/]+\.py)#L(\d+)\)", text)
    assert len(links) >= 20
    for name, path, line in links:
        lines = (ROOT / path).read_text().splitlines()
        assert 0 < int(line) <= len(lines), f"{path}#L{line} is past the end of the file"
        assert name in lines[int(line) - 1], f"docs/ppo.md: {path}#L{line} should show {name!r}, shows {lines[int(line) - 1]!r} (run: python docs/fix_links.py)"


def test_fix_links_would_change_nothing():
    """Each link points at the first line that shows its name (a def or class first), as
    docs/fix_links.py writes it: not at a later mention such as an import or a call."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("fix_links", ROOT / "docs" / "fix_links.py")
    fix = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fix)
    text = (ROOT / "docs" / "ppo.md").read_text()
    for m in re.finditer(r"\[`([^`]+)`\]\(\.\./(minirlhf/[\w/]+\.py)#L(\d+)\)", text):
        assert int(m.group(3)) == fix.line_of(m.group(1), m.group(2)), f"run: python docs/fix_links.py ({m.group(0)})"
