"""Tests of minirlhf.io, minirlhf.settings and minirlhf.paths (fast, offline)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from minirlhf import paths
from minirlhf.io import (DataError, append_jsonl, load_json_dataset, read_json, read_jsonl,
                         require_columns, write_json_atomic, write_jsonl_atomic)
from minirlhf.settings import Settings, get_settings, scaled

REPO = Path(__file__).resolve().parents[1]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- read_jsonl ---------------------------------------------------------------------

def test_read_jsonl_reads_rows_and_skips_empty_lines(tmp_path):
    f = _write(tmp_path / "x.jsonl", '{"a": 1}\n\n  \n{"a": 2, "b": "é"}\n')
    assert read_jsonl(f, required=["a"]) == [{"a": 1}, {"a": 2, "b": "é"}]


def test_read_jsonl_malformed_line_names_file_and_line(tmp_path):
    f = _write(tmp_path / "x.jsonl", '{"a": 1}\n\n{"a": 2 "b": 3}\n')
    with pytest.raises(DataError) as e:
        read_jsonl(f)
    assert str(e.value).startswith(f"{f}, line 3: not valid JSON (Expecting ',' delimiter")


def test_read_jsonl_missing_column(tmp_path):
    f = _write(tmp_path / "x.jsonl", '{"prompt": "p", "completion": "c"}\n'
                                     '{"prompt": "p", "completion": "c"}\n'
                                     '{"prompt": "p", "text": "t"}\n')
    with pytest.raises(DataError) as e:
        read_jsonl(f, required=("prompt", "completion"))
    assert str(e.value) == f"{f}, line 3: missing column 'completion' (has: prompt, text)"


def test_read_jsonl_not_an_object(tmp_path):
    f = _write(tmp_path / "x.jsonl", '{"a": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"x\.jsonl, line 2: expected a JSON object, got list"):
        read_jsonl(f)


@pytest.mark.parametrize("text", ["", "\n \n"])
def test_read_jsonl_no_rows(tmp_path, text):
    f = _write(tmp_path / "empty.jsonl", text)
    with pytest.raises(DataError) as e:
        read_jsonl(f)
    assert str(e.value) == f"{f}: no rows"


def test_read_jsonl_missing_file_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_read_json_malformed(tmp_path):
    f = _write(tmp_path / "c.json", '{"a": }')
    with pytest.raises(DataError, match=r"c\.json: not valid JSON"):
        read_json(f)


# --- require_columns ----------------------------------------------------------------

def test_require_columns_on_rows():
    rows = [{"prompt": "p", "chosen": "c"}, {"prompt": "p"}]
    require_columns(rows[:1], ["prompt", "chosen"], "prefs")
    with pytest.raises(DataError) as e:
        require_columns(rows, ["prompt", "chosen"], "prefs")
    assert str(e.value) == "prefs, row 2: missing column 'chosen' (has: prompt)"
    with pytest.raises(DataError, match="prefs: no rows"):
        require_columns([], ["prompt"], "prefs")


def test_require_columns_on_dataset():
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list([{"prompt": "p", "text": "t"}])
    require_columns(ds, ["prompt"], "sft")
    with pytest.raises(DataError) as e:
        require_columns(ds, ["prompt", "completion", "score"], "sft")
    assert str(e.value) == "sft: missing columns 'completion', 'score' (has: prompt, text)"


# --- writes -------------------------------------------------------------------------

def test_write_jsonl_atomic_content_and_no_temp_files(tmp_path):
    f = tmp_path / "sub" / "out.jsonl"
    rows = [{"b": 1, "a": "é"}, {"z": [1, 2]}]
    write_jsonl_atomic(f, rows)
    assert f.read_bytes() == '{"b": 1, "a": "é"}\n{"z": [1, 2]}\n'.encode("utf-8")
    write_jsonl_atomic(f, rows[:1])  # replaces, never appends
    assert read_jsonl(f) == rows[:1]
    assert sorted(p.name for p in f.parent.iterdir()) == ["out.jsonl"]
    assert f.stat().st_mode & 0o777 == 0o644


def test_write_atomic_failure_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    f = tmp_path / "out.jsonl"
    write_jsonl_atomic(f, [{"a": 1}])
    with pytest.raises(TypeError):
        write_jsonl_atomic(f, [{"a": object()}])

    def killed(*args):
        raise OSError("killed mid-write")

    monkeypatch.setattr("minirlhf.io.os.replace", killed)
    with pytest.raises(OSError, match="killed"):
        write_jsonl_atomic(f, [{"a": 2}])
    assert read_jsonl(f) == [{"a": 1}]
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_write_json_atomic(tmp_path):
    f = tmp_path / "config.json"
    write_json_atomic(f, {"lr": 1e-4, "name": "é"})
    assert f.read_text("utf-8") == '{\n  "lr": 0.0001,\n  "name": "é"\n}\n'
    assert read_json(f) == {"lr": 1e-4, "name": "é"}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_append_jsonl_survives_reread(tmp_path):
    f = tmp_path / "runs" / "log.jsonl"
    for step in range(3):
        append_jsonl(f, {"step": step, "reward": step / 2})
        assert read_jsonl(f)[-1] == {"step": step, "reward": step / 2}
    assert [r["step"] for r in read_jsonl(f)] == [0, 1, 2]
    assert f.read_text("utf-8").count("\n") == 3


def test_load_json_dataset(tmp_path):
    pytest.importorskip("datasets")
    f = tmp_path / "d.jsonl"
    write_jsonl_atomic(f, [{"prompt": "a", "n": 1}, {"prompt": "b", "n": 2}])
    ds = load_json_dataset(f)
    assert ds.column_names == ["prompt", "n"] and ds["n"] == [1, 2]
    with pytest.raises(FileNotFoundError):
        load_json_dataset(tmp_path / "missing.jsonl")


# --- settings -----------------------------------------------------------------------

@pytest.mark.parametrize("value, fast", [("1", True), ("true", True), ("YES", True),
                                         ("0", False), ("", False), ("no", False)])
def test_fast_from_env(monkeypatch, value, fast):
    monkeypatch.setenv("MINIRLHF_FAST", value)
    assert get_settings(device="cpu").fast is fast


def test_fast_argument_beats_env(monkeypatch):
    monkeypatch.setenv("MINIRLHF_FAST", "1")
    assert get_settings(fast=False, device="cpu").fast is False
    monkeypatch.delenv("MINIRLHF_FAST")
    assert get_settings(fast=True, device="cpu").fast is True
    assert get_settings(device="cpu").fast is False


def test_explicit_cpu_and_auto(monkeypatch):
    monkeypatch.delenv("MINIRLHF_DEVICE", raising=False)
    s = get_settings(device="cpu", seed=3)
    assert (s.device, s.gpu, s.seed) == ("cpu", False, 3)
    assert get_settings().device in ("cpu", "cuda", "mps")
    monkeypatch.setenv("MINIRLHF_DEVICE", "cpu")
    assert get_settings().device == "cpu"


def test_bad_device_raises_clear_error():
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        get_settings(device="gpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            get_settings(device="cuda")
    with pytest.raises(ValueError, match="cuda:99"):
        get_settings(device="cuda:99")


def test_scaled_fast_wins_over_gpu():
    assert scaled(10, 1, 100, Settings(fast=False, device="cpu")) == 10
    assert scaled(10, 1, 100, Settings(fast=False, device="cuda:0")) == 100
    assert scaled(10, 1, 100, Settings(fast=True, device="cuda")) == 1


# --- paths and packaging ------------------------------------------------------------

def test_data_dir_exists():
    d = paths.data_dir()
    assert d.is_dir() and (d / "__init__.py").is_file()
    assert paths.world_dir() == d / "world"
    assert paths.base_model_dir() == d / "models" / "base-tiny"
    assert paths.base_model_dir("small").name == "base-small"


def test_colab_url_uses_repo_url():
    url = paths.repo_url()
    owner_name = re.fullmatch(r"https://github\.com/([^/]+/[^/]+?)/?", url).group(1)
    colab = paths.colab_url("01_sft.ipynb")
    assert colab == (f"https://colab.research.google.com/github/{owner_name}"
                     "/blob/main/notebooks/01_sft.ipynb")
    assert paths.colab_url("notebooks/02_rm") == colab.replace("01_sft", "02_rm")


def test_repo_url_is_pyprojects_homepage():
    text = (REPO / "pyproject.toml").read_text("utf-8")
    assert f'Homepage = "{paths.repo_url()}"' in text


def test_every_subpackage_is_listed_in_pyproject():
    """pyproject lists packages by hand (data/ is mapped in); a new one must be added."""
    text = (REPO / "pyproject.toml").read_text("utf-8")
    listed = set(json.loads(re.search(r"^packages = (\[.*\])$", text, re.M).group(1)))
    found = {".".join(p.parent.relative_to(REPO).parts)
             for p in (REPO / "minirlhf").rglob("__init__.py")}
    assert found <= listed, f"add {sorted(found - listed)} to packages in pyproject.toml"
    assert "minirlhf.data" in listed


def test_readme_colab_badges_match_the_project_url():
    """The URL lives in pyproject.toml; the README's badges must agree with it."""
    import re
    from pathlib import Path

    from minirlhf.paths import colab_url
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    links = re.findall(r"\]\((https://colab\.research\.google\.com/github/[^)]+)\)", readme)
    assert links
    for link in links:
        assert link == colab_url(link.rsplit("/", 1)[-1])
