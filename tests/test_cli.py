"""The command line's input errors are one clear line, not a traceback."""
from minirlhf.cli import main


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
