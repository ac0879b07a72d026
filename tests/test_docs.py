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
