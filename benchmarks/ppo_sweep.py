"""PPO's settings measured on finished runs: PPO trained again from each run's own SFT model and reward
model, with some `PPOConfig` fields changed, and judged as the run judged its own PPO.

    python benchmarks/ppo_sweep.py --run runs/c0 runs/c1 runs/c2 --try "" --try beta=0.05 \\
        --try lr=1e-4,beta=0.2 --save data/results/ppo_sweep_cpu.json    # ~100 s per run and setting on 2 CPU cores
    python benchmarks/ppo_sweep.py --show data/results/ppo_sweep_cpu.json

Each ``--run`` is a finished `minirlhf run` folder (its ``sft/``, ``rm/``, ``summary.json`` and
``samples.jsonl``). Each ``--try`` sets `PPOConfig` fields (``name=value`` pairs, commas between;
numbers, ``true``/``false``, or words) on top of the settings `minirlhf run` used for that run (its
seed, its fast mode); ``--try ""`` changes nothing and so reproduces the run's own PPO on the machine
that made it. PPO trains on the world's PPO prompts against the run's reward model, then samples the
run's evaluation prompts with the run's seed and temperature; the gold win rates over the run's own
SFT and base answers, the KL to SFT and the gold rates are computed as `minirlhf run` computes them.
Prints one JSON line; ``--save`` also writes it with the command, commit and device.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse(text: str) -> dict:
    """'beta=0.05,adaptive_kl=true' -> {"beta": 0.05, "adaptive_kl": True}, typed as PPOConfig's fields."""
    from minirlhf.ladder import config_changes
    from minirlhf.ppo import PPOConfig
    return config_changes(text, PPOConfig, "--try")


def measure(run: Path, change: dict, device: str, out: Path) -> dict:
    """PPO from ``run``'s SFT model against its reward model with ``change``, judged as the run judged PPO."""
    from minirlhf.evaluate import against_run
    from minirlhf.io import read_json
    from minirlhf.ppo import run_ppo
    from minirlhf.run import configs_of
    summary = read_json(run / "summary.json")
    config = replace(configs_of(summary, device)[2], **change)
    ppo = run_ppo(run / "sft", run / "rm", out, config, progress=False)
    judged = against_run(run, ppo["policy"], ppo["ref_policy"], ppo["tokenizer"])
    return {"run": str(run), "seed": summary["seed"], "rm_gold": summary["rm"]["accuracy_gold"],
            **{f"ppo_{k}": {x: w[x] for x in ("gold", "ci95", "wins", "ties", "losses")}
               for k, w in judged["win_rates"].items()},
            "kl": round(judged["kl"], 4), "rates": {k: v for k, v in judged["rates"].items() if k.endswith("_rate")},
            "ppo_s": round(ppo["seconds"], 1),
            "run_ppo_vs_sft": summary.get("win_rates", {}).get("ppo_vs_sft", {}).get("gold")}


def markdown(r: dict) -> str:
    """A saved result as a markdown table: one row per setting, the mean and each run."""
    head = ("| setting | PPO vs SFT, mean | per run | PPO vs base, mean | KL, mean | helpful, mean |\n"
            "|---|---|---|---|---|---|")
    rows = []
    own = [m.get("run_ppo_vs_sft") for m in r["tries"][0]["runs"]] if r["tries"] else []
    if own and None not in own and not any(t["change"] == {} for t in r["tries"]):
        rows.append(f"| the runs' own PPO (their summary.json) | {statistics.mean(own):.3f} | "
                    + " / ".join(f"{x:.3f}" for x in own) + " | | | |")
    for t in r["tries"]:
        ms, name = t["runs"], t["setting"] or "the runs' own settings, trained again"
        mean = lambda f: statistics.mean(f(m) for m in ms)  # noqa: E731
        per = " / ".join(f"{m['ppo_vs_sft']['gold']:.3f}" for m in ms)
        rows.append(f"| {name} | {mean(lambda m: m['ppo_vs_sft']['gold']):.3f} | {per} | "
                    f"{mean(lambda m: m['ppo_vs_base']['gold']):.3f} | {mean(lambda m: m['kl']):.2f} | "
                    f"{mean(lambda m: m['rates']['helpful_rate']):.3f} |")
    return "\n".join([head] + rows)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", nargs="+", default=[], help="finished `minirlhf run` folders (one per seed)")
    p.add_argument("--try", dest="tries", action="append", default=[], metavar="SETTING",
                   help='PPOConfig fields to change, "name=value,name=value" ("" for none); repeatable')
    p.add_argument("--out", default="runs/ppo_sweep", help="where each setting's PPO checkpoints go")
    from minirlhf.ladder import emit_result, provenance, require_run_folders, result_options, show_saved
    result_options(p)
    args = p.parse_args(argv)
    if args.show:
        return show_saved(args.show, markdown)
    require_run_folders(p, args.run, ("summary.json", "samples.jsonl", "sft/config.json", "rm/config.json"),
                        "a finished `minirlhf run` folder")
    if not args.tries:
        p.error('give at least one --try (--try "" reproduces the runs\' own PPO)')
    runs, changes = [Path(r) for r in args.run], [parse(t) for t in args.tries]   # all checked before any training
    out = {**provenance("ppo_sweep", argv, args.device), "tries": []}
    start = time.perf_counter()
    for i, (text, change) in enumerate(zip(args.tries, changes)):
        measured = [measure(run, change, args.device, Path(args.out) / f"try{i}" / run.name) for run in runs]
        out["tries"].append({"setting": text, "change": change, "runs": measured})
        print(f"{text or '(own)'}: " + json.dumps([m["ppo_vs_sft"]["gold"] for m in measured]), file=sys.stderr, flush=True)
    out["seconds"] = round(time.perf_counter() - start, 1)
    return emit_result(out, args.save)


if __name__ == "__main__":
    main()
