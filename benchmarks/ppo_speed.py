"""PPO speed on the anchor workload of ../shared/bench/trl_ppo_anchor.py, through minirlhf's own
``train_ppo`` (the code the notebooks run; no benchmark-only path).

    python benchmarks/ppo_speed.py                 # GPU: 12x768 GPT-2, vocab 8192, batch 64, 32 + 64 tokens, bf16
    python benchmarks/ppo_speed.py --device cpu    # CPU: 4x128, batch 16, 32 + 32 tokens, fp32
    python benchmarks/ppo_speed.py --device cpu --grid   # the scaling table of docs/speed.md
    python benchmarks/ppo_speed.py --compile       # PPOConfig(compile=True)
    python benchmarks/ppo_speed.py --no-cuda-graphs   # PPOConfig(cuda_graphs=False): each update launched op by op

Four separate GPT-2 models with random weights (policy, reference, value, reward) and a BPE
tokenizer trained on random words, as in the anchor; 4 PPO epochs, one minibatch, the full
response length sampled (random weights almost never draw the end-of-text token, and
sampling goes on until every answer has one). Prints one JSON line: median
seconds per iteration (iterations after the first two), episodes per second, peak GPU memory.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch


def tokenizer_and_prompts(vocab: int, n_prompts: int, prompt_len: int, seed: int = 0):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(20000)]
    corpus = [" ".join(rng.choices(words, k=64)) for _ in range(4000)]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<pad>", "<eos>", "<unk>"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    prompts = []
    for text in corpus:                           # prompts of exactly prompt_len tokens, as text
        ids = tokenizer(text)["input_ids"][:prompt_len]
        if len(ids) == prompt_len:
            prompt = tokenizer.decode(ids)
            if len(tokenizer(prompt)["input_ids"]) == prompt_len:
                prompts.append(prompt)
        if len(prompts) == n_prompts:
            break
    return tokenizer, prompts


def models(tokenizer, n_layer: int, n_embd: int, n_head: int):
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel
    cfg = GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_layer=n_layer, n_embd=n_embd, n_head=n_head,
                     pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                     bos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    policy, ref = GPT2LMHeadModel(cfg), GPT2LMHeadModel(cfg)
    ref.load_state_dict(policy.state_dict())
    cfg_s = GPT2Config(**{**cfg.to_dict(), "num_labels": 1})
    value, reward = GPT2ForSequenceClassification(cfg_s), GPT2ForSequenceClassification(cfg_s)
    return policy, ref, value, reward


def main(argv=None) -> dict:
    from minirlhf.ppo import LearnedReward, PPOConfig, train_ppo, use_cuda_graphs
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--iterations", type=int, default=8)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--response", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--grid", action="store_true", help="batch and response length x1, x2: a markdown table")
    p.add_argument("--profile", default=None, metavar="FILE",
                   help="profile the 5th iteration (torch.profiler): time per part of PPO and the top kernels to FILE")
    p.add_argument("--compile", action="store_true",
                   help="PPOConfig(compile=True): scoring and training passes through torch.compile (compiling "
                        "happens in the first iteration, outside the median)")
    p.add_argument("--no-cuda-graphs", action="store_true",
                   help="PPOConfig(cuda_graphs=False): the minibatch updates run op by op, not as a replayed CUDA graph")
    args = p.parse_args(argv)
    if args.grid:
        return grid(args)
    cpu = args.device == "cpu"
    if args.threads:
        torch.set_num_threads(args.threads)
    size = dict(n_layer=4, n_embd=128, n_head=4) if cpu else dict(n_layer=12, n_embd=768, n_head=12)
    batch = args.batch or (16 if cpu else 64)
    response = args.response or (32 if cpu else 64)
    tokenizer, prompts = tokenizer_and_prompts(8192, batch * args.iterations, 32)
    policy, ref, value, reward = models(tokenizer, **size)
    config = PPOConfig(iterations=args.iterations, batch_size=batch, mini_batch_size=batch, ppo_epochs=4,
                       lr=1e-5, temperature=1.0, max_new_tokens=response, save_every=0, device=args.device,
                       format_prompts=False, bf16=not cpu, compile=args.compile,
                       cuda_graphs=False if args.no_cuda_graphs else None)
    stamps = []
    if not cpu:
        torch.cuda.reset_peak_memory_stats()

    prof = profiler(cpu) if args.profile else None

    def clock(metrics, result):
        if not cpu:
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        if prof is not None and len(stamps) in (4, 5):
            prof.start() if len(stamps) == 4 else (prof.stop(), write_profile(prof, cpu, args.profile))

    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_ppo(policy, ref, value, LearnedReward(reward.to(args.device), tokenizer, format_prompts=False), tokenizer,
                  prompts, config, callback=clock, progress=False, gold=False)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    graphs = (use_cuda_graphs(config, policy, value, None if cpu else torch.bfloat16)   # asked for, and recorded
              and not any("could not be recorded" in str(w.message) for w in caught))
    gaps = [b - a for a, b in zip([t0] + stamps[:-1], stamps)]
    steady = gaps[2:] or gaps
    median = statistics.median(steady)
    out = {"bench": "minirlhf train_ppo", "device": "cpu" if cpu else torch.cuda.get_device_name(),
           "precision": "fp32" if cpu else "bf16 autocast", "torch": torch.__version__, "python": platform.python_version(),
           "threads": torch.get_num_threads(), "size": size,
           "params_M": round(sum(x.numel() for x in policy.parameters()) / 1e6, 1), "batch": batch, "prompt": 32,
           "response": response, "ppo_epochs": 4, "compile": args.compile, "cuda_graphs": graphs,
           "iter_s_median": round(median, 3),
           "episodes_per_s": round(batch / median, 1), "iter_s_all": [round(g, 3) for g in gaps],
           "peak_gpu_GiB": None if cpu else round(torch.cuda.max_memory_allocated() / 2**30, 2)}
    print(json.dumps(out))
    return out


def profiler(cpu: bool):
    from torch.profiler import ProfilerActivity, profile
    return profile(activities=[ProfilerActivity.CPU] + ([] if cpu else [ProfilerActivity.CUDA]))


def write_profile(prof, cpu: bool, path: str) -> None:
    """Wall (CPU-side) and device time of each ``ppo/...`` range of one iteration, then the top ops."""
    events = prof.key_averages()
    dev = "cpu" if cpu else "device"
    attr = "self_cpu_time_total" if cpu else "self_device_time_total"
    total = lambda e: getattr(e, "device_time_total", getattr(e, "cuda_time_total", 0))  # noqa: E731
    lines = [f"| part | wall ms | {dev} ms |", "|---|---|---|"]
    for e in sorted((e for e in events if e.key.startswith("ppo/")), key=lambda e: -e.cpu_time_total):
        lines.append(f"| {e.key} | {e.cpu_time_total / 1e3:.1f} | {(e.cpu_time_total if cpu else total(e)) / 1e3:.1f} |")
    lines += ["", events.table(sort_by=attr, row_limit=30)]
    Path(path).write_text("\n".join(lines))
    print("\n".join(lines[:12]), file=sys.stderr)


def grid(args) -> dict:
    """Seconds per iteration as batch size and response length double."""
    cpu = args.device == "cpu"
    b0, r0 = (16, 32) if cpu else (64, 64)
    rows = {}
    for b in (b0, 2 * b0):
        for r in (r0, 2 * r0):
            argv = ["--device", args.device, "--batch", str(b), "--response", str(r), "--iterations", str(args.iterations)]
            rows[(b, r)] = main(argv + (["--threads", str(args.threads)] if args.threads else []))["iter_s_median"]
    print(f"\n| batch \\ response tokens | {r0} | {2 * r0} |\n|---|---|---|")
    for b in (b0, 2 * b0):
        print(f"| {b} | {rows[(b, r0)]:.2f} s | {rows[(b, 2 * r0)]:.2f} s |")
    return {f"{b}x{r}": v for (b, r), v in rows.items()}


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
