"""Best-of-n with a run's own reward model: what it can buy without RL, beside what PPO bought.

    python benchmarks/best_of_n.py --run runs/t0 runs/t1 runs/t2 --save data/results/best_of_n_cpu.json \\
        --plot docs/best_of_n.png                      # ~35 s per run on 2 CPU cores (n up to 16)
    python benchmarks/best_of_n.py --show data/results/best_of_n_cpu.json   # a saved result as markdown

For each folder written by `minirlhf run`: 16 answers of its SFT policy per evaluation prompt
(`best_of_n.candidates`, seeds the run's evaluation did not use), the one its reward model scores
highest among the first n, and the one gold scores highest, each judged by gold against the run's
own SFT evaluation answer (`samples.jsonl`) - the reference of the run's `ppo_vs_sft`. The run's PPO
policy goes beside them at its `ppo.kl`. Prints one JSON line; `--save` also writes it with the
command, commit and device.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def one_run(run: Path, ns: tuple[int, ...], device: str) -> dict:
    from minirlhf.best_of_n import run_best_of_n
    from minirlhf.io import read_json, read_jsonl
    summary = read_json(run / "summary.json")
    rows = read_jsonl(run / "samples.jsonl", required=("prompt", "sft"))
    t = time.perf_counter()
    curve = run_best_of_n(run / "sft", run / "rm", [r["prompt"] for r in rows], [r["sft"] for r in rows], ns,
                          seed=summary["seed"], device=device)
    out = {"run": str(run), "seed": summary["seed"], "seconds": round(time.perf_counter() - t, 1),
           "rm_accuracy_gold": summary["rm"]["accuracy_gold"], "rm_train_prompts": summary["rm"].get("train_prompts"),
           "curve": curve}
    if "ppo" in summary:
        out["ppo"] = {"kl": summary["ppo"]["kl"], "vs_sft": summary["win_rates"]["ppo_vs_sft"]["gold"],
                      "helpful_rate_by_category": summary["ppo"].get("helpful_rate_by_category")}
    return out


def markdown(r: dict) -> str:
    """A saved result as a markdown table: gold win rate over one SFT sample."""
    ns = [c["n"] for c in r["runs"][0]["curve"]]
    head = ("| run | RM vs gold (pairs) | " + " | ".join(f"best-of-{n} by RM" for n in ns)
            + f" | best-of-{ns[-1]} by gold | PPO (KL) |\n|" + "---|" * (len(ns) + 4))
    rows = []
    for x in r["runs"]:
        ppo = f"{x['ppo']['vs_sft']:.3f} ({x['ppo']['kl']:.2f} nats)" if "ppo" in x else "–"
        rows.append(f"| {x['run']} | {x['rm_accuracy_gold']:.3f} | "
                    + " | ".join(f"{c['rm']['gold']:.3f}" for c in x["curve"])
                    + f" | {x['curve'][-1]['gold']['gold']:.3f} | {ppo} |")
    kl = "| KL bound (nats) | | " + " | ".join(f"{c['kl_bound']:.2f}" for c in r["runs"][0]["curve"]) + " | | |"
    return "\n".join([head] + rows + [kl])


def figure(r: dict):
    from minirlhf import plots
    name = lambda x: (f"seed {x['seed']}, {x['rm_train_prompts'] or '?'} ranked prompts "  # noqa: E731
                      f"(RM {x['rm_accuracy_gold']:.2f} vs gold)")
    curves = {name(x): x["curve"] for x in r["runs"]}
    ppo = {name(x): (x["ppo"]["kl"], x["ppo"]["vs_sft"]) for x in r["runs"] if "ppo" in x}
    return plots.best_of_n(curves, ppo)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", nargs="+", default=[], help="folders written by `minirlhf run`")
    p.add_argument("--n", type=int, nargs="+", default=None, help="values of n (default: 1 2 4 8 16)")
    p.add_argument("--plot", default=None, help="write the figure here (PNG)")
    from minirlhf.ladder import emit_result, provenance, require_run_folders, result_options, show_saved
    result_options(p)
    args = p.parse_args(argv)
    from minirlhf import plots
    from minirlhf.best_of_n import N_VALUES
    if args.show:
        r = show_saved(args.show, markdown)
        if args.plot:
            plots.save(figure(r), args.plot)
        return r
    require_run_folders(p, args.run, ("summary.json", "samples.jsonl", "sft/config.json", "rm/config.json"),
                        "a finished `minirlhf run` folder")
    ns = tuple(sorted(set(args.n))) if args.n else N_VALUES
    out = {**provenance("best_of_n", argv, args.device), "runs": []}
    for run in args.run:
        out["runs"].append(one_run(Path(run), ns, args.device))
        print(f"{run}: {json.dumps({c['n']: c['rm']['gold'] for c in out['runs'][-1]['curve']})}", file=sys.stderr,
              flush=True)
    emit_result(out, args.save)
    if args.plot:
        plots.save(figure(out), args.plot)
    return out


if __name__ == "__main__":
    main()
