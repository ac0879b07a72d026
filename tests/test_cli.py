"""The command line's input errors are one clear line, not a traceback."""
import pytest

from minirlhf.cli import SIZES, main
from minirlhf.pretrain import SIZES as PRETRAIN_SIZES


def test_run_with_a_size_that_was_never_pretrained(capsys, tmp_path):
    assert main(["run", "--size", "medium", "--out", str(tmp_path)]) == 2
    assert "minirlhf pretrain --size medium" in capsys.readouterr().err


def test_run_with_both_model_and_size(capsys, tmp_path):
    assert main(["run", "--size", "tiny", "--model", "x", "--out", str(tmp_path)]) == 2
    assert "not both" in capsys.readouterr().err


def test_run_with_zero_ppo_iterations(capsys, tmp_path):
    assert main(["run", "--ppo-iterations", "0", "--out", str(tmp_path)]) == 2
    assert "ppo_iterations must be at least 1" in capsys.readouterr().err


def test_ladder_with_an_unknown_size(capsys, tmp_path):
    assert main(["ladder", "--sizes", "huge", "--out", str(tmp_path)]) == 2
    assert "unknown size" in capsys.readouterr().err


def test_run_with_a_model_folder_that_is_not_there(capsys, tmp_path):
    assert main(["run", "--model", str(tmp_path / "typo"), "--out", str(tmp_path / "run")]) == 2
    assert "no folder at" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()                 # nothing made before the check


def test_run_with_an_empty_model(capsys, tmp_path):
    assert main(["run", "--model", "", "--out", str(tmp_path)]) == 2
    assert "--model is empty" in capsys.readouterr().err


def test_sizes_and_counts_are_checked_by_the_parser(capsys):
    assert set(SIZES) == set(PRETRAIN_SIZES)
    for argv in (["pretrain", "--size", "huge"], ["judge", "--model", "x", "--n", "0"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
