"""DPO on a run's own rankings, beside its PPO policy and best-of-n: one reward-KL frontier.

    python benchmarks/dpo_frontier.py --run runs/d0 runs/d1 runs/d2 --beta 0.03 0.1 0.3 \\
        --save data/results/dpo_cpu.json --best-of-n data/results/best_of_n_cpu.json \\
        --plot docs/dpo_frontier.png                   # ~50 s per run and beta on 2 CPU cores
    python benchmarks/dpo_frontier.py --show data/results/dpo_cpu.json   # a saved result as markdown

For each folder written by `minirlhf run` and each beta (learning rate, epochs): `dpo.run_dpo` trains
the run's SFT model on the rankings its reward model learned from (``rm/rankings.jsonl``) and judges
the DPO policy as the run judged PPO: gold win rate over the run's SFT (and PPO, base) answers to the
evaluation prompts, KL to SFT as ``ppo.kl`` is measured, and its implicit reward's accuracy on the
run's held-out comparisons. ``--best-of-n`` adds a saved `best_of_n.py` result's curves to the figure
(for the same runs: a curve is drawn for the row with its seed and number of ranked prompts). Prints
one JSON line; ``--save`` also writes it with the command, commit and device.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path


def one(run: Path, beta: float, lr: float | None, epochs: int | None, device: str) -> dict:
    from dataclasses import replace

    from minirlhf.dpo import config_for_run, run_dpo
    from minirlhf.io import read_json
    summary = read_json(run / "summary.json")
    overrides = {k: v for k, v in (("lr", lr), ("epochs", epochs)) if v is not None}
    config = replace(config_for_run(summary), beta=beta, device=device, **overrides)
    r = run_dpo(run, run / f"dpo_beta{beta:g}_lr{config.lr:g}_epochs{config.epochs}", config, progress=False)
    out = {k: r[k] for k in ("seed", "run", "train_rankings", "dpo", "implicit_rm", "rm", "win_rates", "timings_s")}
    out["beta"], out["lr"], out["epochs"] = beta, config.lr, config.epochs
    if "ppo" in summary:
        out["ppo"] = {"kl": summary["ppo"]["kl"], "vs_sft": summary["win_rates"]["ppo_vs_sft"]["gold"],
                      "helpful_rate": summary["ppo"]["helpful_rate"]}
    out["sft_helpful_rate"] = summary["sft"]["helpful_rate"]
    return out


def markdown(r: dict) -> str:
    """A saved result as a markdown table."""
    head = ("| seed | beta | lr | epochs | DPO vs SFT (gold) | wins / ties / losses | DPO vs PPO | DPO vs base | KL (nats) "
            "| implicit reward vs gold | RM vs gold | helpful (SFT → DPO) | harmful | PPO vs SFT (KL) | train |\n|"
            + "---|" * 15)
    rows = []
    for x in r["rows"]:
        w = x["win_rates"]["dpo_vs_sft"]
        ppo = f"{x['ppo']['vs_sft']:.3f} ({x['ppo']['kl']:.2f})" if "ppo" in x else "–"
        vs_ppo = f"{x['win_rates']['dpo_vs_ppo']['gold']:.3f}" if "dpo_vs_ppo" in x["win_rates"] else "–"
        rows.append(f"| {x['seed']} | {x['beta']:g} | {x['lr']:g} | {x['epochs']} "
                    f"| {w['gold']:.3f} [{w['ci95'][0]:.3f}, {w['ci95'][1]:.3f}] "
                    f"| {w['wins']:.3f} / {w['ties']:.3f} / {w['losses']:.3f} | {vs_ppo} "
                    f"| {x['win_rates']['dpo_vs_base']['gold']:.3f} | {x['dpo']['kl']:.2f} "
                    f"| {x['implicit_rm']['accuracy_gold']:.3f} | {x['rm']['accuracy_gold']:.3f} "
                    f"| {x['sft_helpful_rate']:.3f} → {x['dpo']['helpful_rate']:.3f} | {x['dpo']['harmful_rate']:.3f} "
                    f"| {ppo} | {x['timings_s']['train']:.0f} s |")
    return "\n".join([head] + rows)


def figure(r: dict, best_of_n: dict | None = None):
    from minirlhf import plots
    seeds = sorted({x["seed"] for x in r["rows"]})
    name = {s: f"seed {s}" for s in seeds}
    trained_on = {x["seed"]: x["train_rankings"] for x in r["rows"]}     # the same seed and rankings: the same run
    curves = {name[x["seed"]]: x["curve"] for x in (best_of_n or {}).get("runs", [])
              if x["seed"] in name and x["rm_train_prompts"] == trained_on[x["seed"]]}
    ppo = {name[x["seed"]]: (x["ppo"]["kl"], x["ppo"]["vs_sft"]) for x in r["rows"] if "ppo" in x}
    dpo = {name[s]: [(x["dpo"]["kl"], x["win_rates"]["dpo_vs_sft"]["gold"]) for x in r["rows"] if x["seed"] == s]
           for s in seeds}                                    # one line per seed through its betas (and lrs, epochs)
    return plots.best_of_n(curves, ppo, dpo=dpo, title="Best-of-n, PPO and DPO on the same rankings")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", nargs="+", default=[], help="folders written by `minirlhf run` (with rm/rankings.jsonl)")
    p.add_argument("--beta", type=float, nargs="+", default=[0.1], help="values of beta (default: 0.1)")
    p.add_argument("--lr", type=float, nargs="+", default=[None], help="learning rates (default: DPOConfig's)")
    p.add_argument("--epochs", type=int, nargs="+", default=[None], help="epochs (default: DPOConfig's)")
    p.add_argument("--best-of-n", default=None, help="a saved best_of_n.py result to draw beside (same seeds)")
    p.add_argument("--plot", default=None, help="write the figure here (PNG)")
    from minirlhf.ladder import emit_result, provenance, require_run_folders, result_options, show_saved
    result_options(p)
    args = p.parse_args(argv)
    from minirlhf import plots
    from minirlhf.io import read_json
    bon = read_json(args.best_of_n) if args.best_of_n else None
    if args.show:
        r = show_saved(args.show, markdown)
        if args.plot:
            plots.save(figure(r, bon), args.plot)
        return r
    from minirlhf.dpo import RUN_FILES
    require_run_folders(p, args.run, RUN_FILES, "a finished `minirlhf run` folder with its rankings")
    out = {**provenance("dpo_frontier", argv, args.device), "rows": []}
    for run in args.run:
        for beta, lr, epochs in itertools.product(args.beta, args.lr, args.epochs):
            out["rows"].append(one(Path(run), beta, lr, epochs, args.device))
            x = out["rows"][-1]
            print(f"{run} beta {beta:g} lr {x['lr']:g} epochs {x['epochs']}: DPO vs SFT "
                  f"{x['win_rates']['dpo_vs_sft']['gold']:.3f}, KL {x['dpo']['kl']:.2f}", file=sys.stderr, flush=True)
    emit_result(out, args.save)
    if args.plot:
        plots.save(figure(out, bon), args.plot)
    return out


if __name__ == "__main__":
    main()
