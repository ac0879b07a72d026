"""PPO end to end on the tiny world: it trains, resumes exactly after a kill, and stops cleanly on NaN."""
import json
import os
import subprocess
import sys

import pytest
import torch

from minirlhf.ppo import PPOConfig, PPOError, run_ppo


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    """A quick SFT model and reward model (fast settings) shared by the tests here."""
    from minirlhf.paths import base_model_dir
    from minirlhf.reward import RMConfig, run_reward_model
    from minirlhf.sft import SFTConfig, run_sft
    root = tmp_path_factory.mktemp("ppo")
    run_sft(base_model_dir("tiny"), root / "sft", SFTConfig(epochs=1), progress=False)
    run_reward_model(root / "sft", root / "rm", RMConfig(epochs=1, max_prompts=200), progress=False)
    return root


SMALL = dict(iterations=4, batch_size=8, mini_batch_size=4, ppo_epochs=2, max_new_tokens=16, save_every=2)


def _strip(history):
    return [{k: v for k, v in h.items() if not k.startswith("time/")} for h in history]


def test_a_short_run_logs_trl_metrics_and_saves_the_policy(stages, tmp_path):
    out = run_ppo(stages / "sft", stages / "rm", tmp_path / "ppo", PPOConfig(**SMALL, ptx_coef=0.5), progress=False)
    last = out["history"][-1]
    for key in ("objective/kl", "objective/entropy", "objective/scores", "objective/rlhf_reward", "objective/gold",
                "policy/approxkl_avg", "policy/clipfrac_avg", "loss/policy_avg", "loss/value_avg",
                "val/clipfrac_avg", "val/num_eos_tokens", "loss/ptx_avg"):
        assert key in last and last[key] == last[key], key
    assert (tmp_path / "ppo" / "policy" / "model.safetensors").exists()
    assert (tmp_path / "ppo" / "checkpoint" / "state.pt").exists()
    assert len(out["samples"]) == SMALL["batch_size"]


KILLER = """
import os, signal, sys
from minirlhf.ppo import PPOConfig, run_ppo
def die(metrics, result):
    if metrics["step"] == 3:
        os.kill(os.getpid(), signal.SIGKILL)
run_ppo(sys.argv[1], sys.argv[2], sys.argv[3], PPOConfig(**{cfg}), callback=die, progress=False)
"""


def test_resume_after_a_kill_gives_the_same_metrics(stages, tmp_path):
    full = run_ppo(stages / "sft", stages / "rm", tmp_path / "full", PPOConfig(**SMALL), progress=False)
    script = KILLER.replace("{cfg}", repr(SMALL))
    proc = subprocess.run([sys.executable, "-c", script, str(stages / "sft"), str(stages / "rm"), str(tmp_path / "cut")],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())})
    assert proc.returncode != 0                               # killed at iteration 3, after the checkpoint at 2
    saved = json.loads((tmp_path / "cut" / "checkpoint" / "history.json").read_text())
    assert len(saved) == 2
    resumed = run_ppo(stages / "sft", stages / "rm", tmp_path / "cut", PPOConfig(**SMALL), resume=True, progress=False)
    assert len(resumed["history"]) == SMALL["iterations"]
    a, b = _strip(full["history"]), _strip(resumed["history"])
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            assert x[k] == (y[k] if isinstance(y[k], str) else pytest.approx(y[k], rel=1e-4, abs=1e-5)), (x["step"], k)


def test_a_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(stages, tmp_path):
    calls = []

    def reward(prompts, responses):
        calls.append(1)
        return torch.full((len(prompts),), float("nan") if len(calls) > 2 else 0.5)

    cfg = PPOConfig(**{**SMALL, "save_every": 1})
    with pytest.raises(PPOError, match="non-finite PPO loss at iteration 3.*checkpoint"):
        run_ppo(stages / "sft", stages / "rm", tmp_path / "nan", cfg, reward_fn=reward, progress=False)
    ckpt = tmp_path / "nan" / "checkpoint"
    assert torch.load(ckpt / "state.pt", weights_only=False)["iteration"] == 2
    assert all(torch.isfinite(t).all() for t in __import__("safetensors.torch", fromlist=["x"]).load_file(
        ckpt / "policy" / "model.safetensors").values())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ppo_raises_gold_utility_over_sft_on_held_out_prompts(stages, seed):
    """PPO's machinery, given a reward that is right (the gold utility as a callable), improves
    the policy on prompts it never trained on. (``minirlhf run`` rewards from the learned RM only;
    how far that gets is the RM's accuracy, reported by the run, not PPO's correctness.)"""
    from minirlhf.evaluate import win_rate
    from minirlhf.generation import generate, load_model
    from minirlhf.judge import eval_prompts
    from minirlhf.ppo import gold_reward
    from minirlhf.world.gold import utility
    # a reward that is right can take bigger steps than the defaults (set for a fallible RM)
    cfg = PPOConfig(iterations=20, batch_size=64, mini_batch_size=16, lr=1e-4, beta=0.05, seed=seed)
    out = run_ppo(stages / "sft", stages / "rm", None, cfg, reward_fn=gold_reward, progress=False)
    prompts = eval_prompts(300)
    sft, tok = load_model(stages / "sft")
    u = {name: [utility(p, r) for p, r in zip(prompts, generate(m, tok, prompts, seed=seed))]
         for name, m in (("ppo", out["policy"]), ("sft", sft))}
    gain = (sum(u["ppo"]) - sum(u["sft"])) / len(prompts)
    print(seed, round(gain, 3), win_rate(u["ppo"], u["sft"], seed=seed))
    assert gain >= 0.03, gain              # measured: +0.071, +0.202, +0.112 mean gold utility


def test_compiled_passes_give_the_same_metrics(stages, tmp_path, monkeypatch):
    """`PPOConfig(compile=True)` runs the scoring and training passes through torch.compile; the
    metrics equal the eager run's. Compiled with the aot_eager backend here (dynamo's trace and
    autograd's graph, no code generation), so the test takes seconds; inductor's kernels are
    checked on one pass in tests/test_ppo_speed.py."""
    compile_, calls = torch.compile, []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: calls.append(fn) or compile_(fn, backend="aot_eager", **kw))
    torch._dynamo.reset()
    cfg = dict(SMALL, iterations=2, save_every=0)
    eager = run_ppo(stages / "sft", stages / "rm", tmp_path / "eager", PPOConfig(**cfg), progress=False)
    compiled = run_ppo(stages / "sft", stages / "rm", tmp_path / "compiled", PPOConfig(**cfg, compile=True),
                       progress=False)
    assert calls and len(eager["history"]) == len(compiled["history"]) == 2      # compiled, and as many iterations
    for x, y in zip(_strip(eager["history"]), _strip(compiled["history"])):
        assert x.keys() == y.keys()
        for k in x:
            assert x[k] == (y[k] if isinstance(y[k], str) else pytest.approx(y[k], rel=1e-3, abs=1e-4)), (x["step"], k)


def test_the_cuda_graph_path_gives_the_same_metrics(stages, tmp_path):
    """`PPOConfig(cuda_graphs=True)` pads the rollout to shapes that repeat and runs each minibatch
    update over fixed buffers (`step_graph`; recorded as a CUDA graph on a GPU, run eagerly here):
    the metrics equal the plain loop's."""
    cfg = dict(SMALL, iterations=3, save_every=0)
    plain = run_ppo(stages / "sft", stages / "rm", tmp_path / "plain", PPOConfig(**cfg, cuda_graphs=False),
                    progress=False)
    graphed = run_ppo(stages / "sft", stages / "rm", tmp_path / "graphed", PPOConfig(**cfg, cuda_graphs=True),
                      progress=False)
    for x, y in zip(_strip(plain["history"]), _strip(graphed["history"])):
        assert x.keys() == y.keys()
        for k in x:
            assert x[k] == (y[k] if isinstance(y[k], str) else pytest.approx(y[k], rel=1e-4, abs=1e-5)), (x["step"], k)
