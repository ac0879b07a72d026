"""DPO: the loss by hand, the sequence log-probabilities against SFT's loss, training that learns the
rankings while the reference stays put, and `run_dpo` on a finished run folder."""
import json
import math

import pytest
import torch

from minirlhf.dpo import DPOConfig, config_for_run, dpo_loss, implicit_rewards, run_dpo, sequence_logps, train_dpo
from minirlhf.lora import LoRAConfig
from minirlhf.generation import load_model
from minirlhf.io import DataError
from minirlhf.paths import base_model_dir
from minirlhf.sft import collate, sft_loss, tokenize_example


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_dpo_loss_pairwise_by_hand():
    # chosen: log pi/pi_SFT = 2.0, rejected: -1.0; beta 0.5 -> -log sigmoid(0.5 * 3) = 0.2014
    loss = dpo_loss(torch.tensor([[2.0, -1.0]]), [[0, 1]], beta=0.5)
    assert loss.item() == pytest.approx(-log_sigmoid(1.5), abs=1e-6)
    assert loss.item() == pytest.approx(0.2014, abs=1e-4)


def test_dpo_loss_k_way_averages_its_pairs():
    # ranking [2, 0, 1]: pairs (2,0), (2,1), (0,1)
    r = torch.tensor([[1.0, 0.0, 3.0]])
    expected = -(log_sigmoid(0.1 * 2) + log_sigmoid(0.1 * 3) + log_sigmoid(0.1 * 1)) / 3
    assert dpo_loss(r, [[2, 0, 1]], beta=0.1).item() == pytest.approx(expected, abs=1e-6)
    # the same ranking reversed is worse
    assert dpo_loss(r, [[1, 0, 2]], beta=0.1).item() > expected


def test_dpo_config_refuses_bad_values():
    with pytest.raises(ValueError, match="beta"):
        DPOConfig(beta=0)
    with pytest.raises(ValueError, match="epochs"):
        DPOConfig(epochs=0)


def test_config_for_run_follows_the_runs_reward_model():
    world = config_for_run({"seed": 2, "lr": {"rm": 3e-4}})
    assert (world.seed, world.lr, world.lora) == (2, DPOConfig().lr, None)
    rung = config_for_run({"seed": 0, "lr": {"rm": 1.5e-4}})         # a base pretrained at half tiny's lr
    assert rung.lr == pytest.approx(DPOConfig().lr / 2)
    real = config_for_run({"seed": 0, "lr": {"rm": 3e-4}, "autopilot": {"lora": True, "gradient_checkpointing": False,
                                                                        "rm_batch_prompts": 2}})
    assert real.lora == LoRAConfig() and real.batch_prompts == 2


@pytest.fixture(scope="module")
def tiny():
    return load_model(base_model_dir("tiny"))


def test_sequence_logps_match_the_sft_loss(tiny):
    model, tok = tiny
    ex = tokenize_example(tok, "What is 2 plus 2?", "It is 4.", 64)
    batch = collate([ex, tokenize_example(tok, "Where does Ada live?", "Ada lives in a town by the sea.", 64)],
                    tok.pad_token_id)
    with torch.no_grad():
        lp = sequence_logps(model, batch)
        one = collate([ex], tok.pad_token_id)
        nll = sft_loss(model(input_ids=one["input_ids"]).logits, one["labels"]).item()
    n_tokens = sum(t != -100 for t in ex["labels"][1:])
    assert lp.shape == (2,)
    assert lp[0].item() == pytest.approx(-nll * n_tokens, rel=1e-4)   # padding beside it changes nothing


RANKINGS = [  # the good answer first, by gold
    {"prompt": "What is 2 plus 2?", "responses": ["It is 4.", "It is 7, you fool."], "ranking": [0, 1]},
    {"prompt": "How do I steal Cleo's rabbit?", "responses": ["Grab it at night.", "Sorry, I can't help with that."],
     "ranking": [1, 0]},
    {"prompt": "What is 3 plus 1?", "responses": ["Why do you ask?", "It is 4.", "Four, of course, idiot."],
     "ranking": [1, 0, 2]},
]


def test_training_learns_the_rankings_and_leaves_the_reference(tiny):
    model, tok = tiny
    ref, _ = load_model(base_model_dir("tiny"))
    before = {k: v.clone() for k, v in ref.state_dict().items()}
    assert implicit_rewards(model, ref, tok, RANKINGS, beta=0.1) == pytest.approx([0.0] * 7, abs=1e-5)
    policy, _ = load_model(base_model_dir("tiny"))
    result = train_dpo(policy, ref, tok, RANKINGS, DPOConfig(epochs=20, batch_prompts=3, lr=1e-3), progress=False)
    h = result.history
    assert len(h) == 20 and h[0]["stage"] == "dpo"
    # the first step is measured before any update: policy = reference, so every log-ratio is 0 (a reference
    # log-prob paired with the wrong answer would show here)
    assert h[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert h[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-4)
    assert h[-1]["loss"] < h[0]["loss"] - 0.3
    assert h[-1]["rewards/accuracies"] == 1.0 and h[-1]["rewards/margins"] > 1.0
    r = implicit_rewards(result.model, ref, tok, RANKINGS, beta=0.1)
    assert r[0] > r[1] and r[3] > r[2] and r[5] > r[4] > r[6]
    assert all(torch.equal(v, before[k]) for k, v in ref.state_dict().items())


def test_train_dpo_reads_pairs_and_names_bad_rows(tiny):
    model, tok = tiny
    ref, _ = load_model(base_model_dir("tiny"))
    pairs = [{"prompt": "What is 2 plus 2?", "chosen": "It is 4.", "rejected": "It is 5."}]
    policy, _ = load_model(base_model_dir("tiny"))
    assert len(train_dpo(policy, ref, tok, pairs, DPOConfig(epochs=2), progress=False).history) == 2
    with pytest.raises(DataError, match="row 1"):
        train_dpo(policy, ref, tok, [{"prompt": "x", "responses": ["a", "b"], "ranking": [1, 1]}], progress=False)


def test_minirlhf_dpo_on_a_run_folder(fast_run, tmp_path, capsys):
    from minirlhf.cli import main
    assert main(["dpo", str(fast_run), "--out", str(tmp_path / "dpo"), "--epochs", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "gold win rate over SFT" in printed and str(tmp_path / "dpo" / "summary.json") in printed
    summary = json.loads((fast_run / "summary.json").read_text())
    saved = json.loads((tmp_path / "dpo" / "summary.json").read_text())
    assert saved["config"]["epochs"] == 1 and saved["config"]["beta"] == DPOConfig().beta
    assert saved["win_rates"].keys() == {"dpo_vs_sft", "dpo_vs_base", "dpo_vs_ppo"}
    w = saved["win_rates"]["dpo_vs_sft"]
    assert w["n"] == summary["win_rates"]["ppo_vs_sft"]["n"]
    assert 0 <= w["gold"] <= 1 and w["ci95"][0] <= w["gold"] <= w["ci95"][1]
    assert saved["dpo"]["kl"] > 0                   # the policy moved away from SFT
    assert saved["implicit_rm"]["n_pairs"] == summary["rm"]["n_pairs"]
    assert saved["train_rankings"] == summary["rm"]["train_prompts"]
    history = [json.loads(line) for line in (tmp_path / "dpo" / "metrics.jsonl").open()]
    assert len(history) == math.ceil(saved["train_rankings"] / 8)
    assert (tmp_path / "dpo" / "policy" / "config.json").is_file()
    rows = [json.loads(line) for line in (tmp_path / "dpo" / "samples.jsonl").open()]
    assert len(rows) == w["n"] and {"prompt", "dpo", "sft", "ppo"} <= rows[0].keys()
    # judged as the run judged PPO: the same sampling path, seed and prompts give the SFT model its own answers back
    from minirlhf.judge import EVAL_MAX_NEW_TOKENS, EVAL_TEMPERATURE
    from minirlhf.ppo import samples_and_kl
    sft, tok = load_model(fast_run / "sft")
    answers, kl = samples_and_kl(sft, sft, tok, [r["prompt"] for r in rows], EVAL_TEMPERATURE, EVAL_MAX_NEW_TOKENS,
                                 seed=summary["seed"])
    assert answers == [r["sft"] for r in rows] and kl == pytest.approx(0.0, abs=1e-5)


def test_run_dpo_names_a_folder_without_rankings(tmp_path, capsys):
    (tmp_path / "summary.json").write_text('{"seed": 0}')
    with pytest.raises(FileNotFoundError, match="rm/rankings.jsonl"):
        run_dpo(tmp_path)
    from minirlhf.cli import main
    assert main(["dpo", str(tmp_path)]) == 2
    assert "rm/rankings.jsonl" in capsys.readouterr().err


def test_frontier_benchmark_on_a_run_folder_and_its_saved_result(fast_run, tmp_path, capsys):
    import importlib.util
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("dpo_frontier", root / "benchmarks" / "dpo_frontier.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    saved, plot = tmp_path / "dpo.json", tmp_path / "dpo.png"
    out = bench.main(["--run", str(fast_run), "--beta", "0.1", "0.3", "--epochs", "1", "--save", str(saved),
                      "--plot", str(plot)])
    assert [(x["beta"], x["epochs"]) for x in out["rows"]] == [(0.1, 1), (0.3, 1)]
    assert json.loads(saved.read_text())["rows"][0]["win_rates"] == out["rows"][0]["win_rates"]
    assert plot.stat().st_size > 10_000
    capsys.readouterr()
    shipped = bench.main(["--show", str(root / "data" / "results" / "dpo_cpu.json")])
    table = capsys.readouterr().out
    assert table.count("\n") == len(shipped["rows"]) + 2          # header, rule, one line per row
    first = shipped["rows"][0]
    assert f"{first['win_rates']['dpo_vs_sft']['gold']:.3f}" in table.splitlines()[2]
