"""How many demonstrations SFT should see: the shipped tiny base model fine-tuned on the world's
demonstrations plus N more (`SFTConfig.more_demonstrations`), judged on the evaluation prompts by gold.

    python benchmarks/sft_demos.py --seeds 0 1 2 --more 0 1860 5000 \\
        --save data/results/sft_demos_cpu.json        # ~6 minutes on 2 CPU cores
    python benchmarks/sft_demos.py --show data/results/sft_demos_cpu.json

For each seed and N, SFT runs with `minirlhf run`'s settings for that seed (`run._stage_configs`), only
``more_demonstrations`` changed, and answers the evaluation prompts as `minirlhf run` does (its
temperature, its seed): N = 1,860 (`run.MORE_DEMONSTRATIONS`) reproduces that seed's run's SFT rates and
``win_rates.sft_vs_base`` on the machine that made it. Reported per row: the gold rates (helpful, false
fact, mean utility, helpful by category) and the gold win rate over the base model's answers (ties
count half). Prints one JSON line; ``--save`` also writes it with the command, commit and device.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def base_answers(seed: int, prompts: list[str], device: str) -> list[str]:
    """The shipped base model's answers, sampled as `minirlhf run` samples them."""
    from minirlhf.generation import load_model
    from minirlhf.paths import base_model_dir
    from minirlhf.run import _samples
    model, tokenizer = load_model(base_model_dir("tiny"), device)
    return _samples(model, tokenizer, prompts, seed)


def measure(seed: int, more: int, prompts: list[str], base: list[str], device: str) -> dict:
    """SFT with ``more`` more demonstrations at ``seed``, judged on ``prompts`` against ``base``'s answers."""
    from minirlhf.evaluate import win_rate
    from minirlhf.judge import rates
    from minirlhf.models import load_tokenizer
    from minirlhf.paths import base_model_dir
    from minirlhf.run import _samples, _stage_configs
    from minirlhf.settings import get_settings
    from minirlhf.sft import run_sft
    from minirlhf.world.gold import utility
    config = replace(_stage_configs(get_settings(fast=False, device=device, seed=seed))[0], more_demonstrations=more)
    t = time.perf_counter()
    sft = run_sft(base_model_dir("tiny"), None, config, progress=False)
    seconds = time.perf_counter() - t
    answers = _samples(sft.model, load_tokenizer(base_model_dir("tiny")), prompts, seed)
    r = rates(prompts, answers)
    wins = win_rate([utility(p, a) for p, a in zip(prompts, answers)], [utility(p, b) for p, b in zip(prompts, base)],
                    seed=seed)
    vals = [h["val_loss"] for h in sft.history if "val_loss" in h]
    return {"seed": seed, "more_demonstrations": more, "sft_s": round(seconds, 1),
            "val_loss": round(vals[-1], 4) if vals else None,
            **{k: v for k, v in r.items() if k in ("helpful_rate", "false_fact_rate", "gold_utility_mean",
                                                    "harmful_rate", "helpful_rate_by_category")},
            "sft_vs_base": {k: wins[k] for k in ("gold", "ci95", "wins", "ties", "losses")}}


def table(result: dict) -> str:
    """Markdown: one row per N, the seeds' values side by side, then their mean."""
    rows = result["rows"]
    seeds = sorted({r["seed"] for r in rows})
    cols = [("helpful", lambda r: r["helpful_rate"]), ("false fact", lambda r: r["false_fact_rate"]),
            ("mean gold utility", lambda r: r["gold_utility_mean"]), ("SFT vs base", lambda r: r["sft_vs_base"]["gold"])]
    head = "| more demonstrations | " + " | ".join(f"{name} (seeds {'/'.join(map(str, seeds))}) | mean" for name, _ in cols)
    lines = [head + " | SFT s |", "|" + "---|" * (2 * len(cols) + 2)]
    for n in sorted({r["more_demonstrations"] for r in rows}):
        at = sorted((r for r in rows if r["more_demonstrations"] == n), key=lambda r: r["seed"])
        cells = " | ".join(f"{' / '.join(f'{get(r):.3f}' for r in at)} | {statistics.mean(get(r) for r in at):.3f}"
                           for _, get in cols)
        lines.append(f"| {n} | {cells} | {statistics.mean(r['sft_s'] for r in at):.0f} |")
    cats = sorted(rows[0]["helpful_rate_by_category"])
    lines += ["", "Helpful rate by category (mean over seeds):", "",
              "| more demonstrations | " + " | ".join(cats) + " |", "|" + "---|" * (len(cats) + 1)]
    for n in sorted({r["more_demonstrations"] for r in rows}):
        at = [r for r in rows if r["more_demonstrations"] == n]
        lines.append(f"| {n} | " + " | ".join(f"{statistics.mean(r['helpful_rate_by_category'][c] for r in at):.2f}"
                                             for c in cats) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--more", type=int, nargs="+", default=[0, 1860], help="numbers of more demonstrations to try")
    p.add_argument("--prompts", type=int, default=None, help="judge the first N evaluation prompts (default: all)")
    from minirlhf.ladder import emit_result, provenance, result_options, show_saved
    result_options(p)
    a = p.parse_args(argv)
    if a.show:
        return show_saved(a.show, table)
    if any(n < 0 for n in a.more):
        p.error(f"--more takes numbers of 0 or more, not {a.more}")
    from minirlhf.judge import eval_prompts
    prompts = eval_prompts(a.prompts)
    t0 = time.perf_counter()
    rows = []
    for seed in a.seeds:
        base = base_answers(seed, prompts, a.device)
        rows += [measure(seed, n, prompts, base, a.device) for n in a.more]
    result = {**provenance("sft_demos", argv, a.device), "prompts": len(prompts), "rows": rows,
              "seconds": round(time.perf_counter() - t0, 1)}
    emit_result(result, a.save)
    print(table(result))
    return result


if __name__ == "__main__":
    main()
