"""The benchmark scripts run end to end on the shipped tiny model (micro sizes)."""
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_real_model_run_measures_win_rates_and_saves_its_result(tmp_path, capsys):
    from minirlhf.paths import base_model_dir
    run = _script("real_model_run")
    saved = tmp_path / "result.json"
    out = run.main(["--model", str(base_model_dir("tiny")), "--demos", "32", "--rm-prompts", "20",
                    "--ppo-iterations", "2", "--batch", "8", "--eval-prompts", "12", "--out", str(tmp_path / "run"),
                    "--save", str(saved)])
    assert json.loads(saved.read_text()) == json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == out
    for name in ("ppo_vs_sft", "sft_vs_base"):
        w = out["win_rates"][name]
        assert w["n"] == 12 and w["ci95"][0] <= w["gold"] <= w["ci95"][1]
        assert abs(w["wins"] + w["ties"] + w["losses"] - 1) < 1e-3   # each rounded to 4 places
    assert out["sizes"]["ppo_iterations"] == 2 and out["ppo_iter_s_median"] > 0 and out["peak_memory_gib"] > 0
    assert (tmp_path / "run" / "ppo" / "policy" / "model.safetensors").exists()
    assert len((tmp_path / "run" / "samples.jsonl").read_text().splitlines()) == 12
    table = run.markdown(out)
    assert "PPO vs its SFT start" in table and f"{out['win_rates']['ppo_vs_sft']['gold']:.3f}" in table
    assert run.main(["--show", str(saved)]) == out


def test_sampling_speed_times_both_samplers():
    out = _script("sampling_speed").main(["--n", "8", "--new-tokens", "4", "--repeats", "1"])
    assert out["n"] == 8 and out["generate_s"] > 0 and out["model_generate_s"] > 0 and out["speedup"] > 0
