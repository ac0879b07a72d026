"""Sampling answers: `generation.generate` (PPO's rollout loop) against `model.generate`.

    python benchmarks/sampling_speed.py [--model PATH] [--n 1024] [--batch 64] [--threads 2]

Samples ``n`` answers (48 new tokens at most, temperature 1.0, as for the reward model's
comparisons) from the world's comparison prompts both ways and prints one JSON line with
the seconds each took (best of ``--repeats``).
"""
from __future__ import annotations

import argparse
import json
import time

import torch


def hf_generate(model, tokenizer, texts: list[str], batch: int, new_tokens: int) -> None:
    for i in range(0, len(texts), batch):
        enc = tokenizer(texts[i:i + batch], return_tensors="pt", padding=True, add_special_tokens=False,
                        padding_side="left").to(model.device)
        model.generate(**enc, max_new_tokens=new_tokens, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                       pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)


def best_of(repeats: int, f, *args) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f(*args)
        times.append(time.perf_counter() - start)
    return round(min(times), 2)


def main(argv=None) -> dict:
    from minirlhf.generation import generate, load_model
    from minirlhf.io import read_jsonl
    from minirlhf.models import prompt_text
    from minirlhf.paths import base_model_dir, world_dir
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(base_model_dir("tiny")))
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--new-tokens", type=int, default=48)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = load_model(args.model)
    model.eval()
    prompts = [r["prompt"] for r in read_jsonl(world_dir() / "comparison_prompts.jsonl")][:args.n]
    texts = [prompt_text(tokenizer, q) for q in prompts]
    with torch.no_grad():
        ours = best_of(args.repeats, generate, model, tokenizer, texts, args.new_tokens, 1.0, args.batch, 0, False)
        theirs = best_of(args.repeats, hf_generate, model, tokenizer, texts, args.batch, args.new_tokens)
    out = {"bench": "sampling_speed", "model": args.model, "n": len(texts), "batch": args.batch,
           "new_tokens": args.new_tokens, "threads": torch.get_num_threads(), "torch": torch.__version__,
           "generate_s": ours, "model_generate_s": theirs, "speedup": round(theirs / ours, 2)}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
