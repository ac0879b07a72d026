"""Every notebook runs top to bottom in fast mode (MINIRLHF_FAST=1) without a cell error.

Each runs from an in-memory copy with the working folder set to a temporary directory, so its
runs/ files land there and the committed notebooks are never rewritten. The kernel is
"python3"; jupyter_client starts a kernel whose command is plain ``python`` with this
interpreter (``sys.executable``), and a first injected cell checks that it did.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 600  # seconds per cell; a fast-mode notebook takes about a minute in all


def test_there_are_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert names == ["00_quickstart.ipynb", "01_base_model.ipynb", "02_sft.ipynb", "03_reward_model.ipynb",
                     "04_ppo.ipynb", "05_evaluation.ipynb", "06_real_model.ipynb", "07_dpo.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_ends_with_self_checked_exercises(path):
    """1-3 exercises after an "Exercises" heading, each checked by code with a hint."""
    cells = nbformat.read(path, as_version=4).cells
    start = next(i for i, c in enumerate(cells) if c.cell_type == "markdown" and "## Exercises" in c.source)
    checks = [c.source for c in cells[start:] if c.cell_type == "code" and "Hint" in c.source]
    assert 1 <= len(checks) <= 3                                  # one self-check cell per exercise
    assert all("Correct!" in c or "well done" in c for c in checks)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_in_fast_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MINIRLHF_FAST", "1")  # the kernel inherits this process's environment
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    assert nb.cells[0].outputs[0]["text"].strip() == sys.executable, "the notebook ran in another Python"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert (tmp_path / "runs").exists() or path.name.startswith("01_"), "runs/ should go to the temporary folder"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_matches_its_generator(path):
    """The notebooks are written by notebooks/make_notebooks.py: edit the script, not the .ipynb.

    Also checks the Colab badge and install line, which the script takes from minirlhf.paths.
    """
    sys.path.insert(0, str(path.parent))
    try:
        import make_notebooks
    finally:
        sys.path.pop(0)
    from minirlhf.paths import colab_url, repo_url
    committed = [(c.cell_type, c.source) for c in nbformat.read(path, as_version=4).cells]
    assert committed == [(c.cell_type, c.source) for c in make_notebooks.build(path.name).cells], \
        "stale notebook: run `python notebooks/make_notebooks.py --execute`"
    assert f"]({colab_url(path.name)})" in committed[0][1]
    assert f"git+{repo_url()}" in committed[1][1]
