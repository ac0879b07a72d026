"""How long the reward model should train: a run's reward model trained again on the run's own
rankings for several numbers of epochs, measured on the run's own held-out comparisons.

    python benchmarks/rm_epochs.py --run runs/s0 runs/s1 runs/s2 --epochs 2 4 6 \\
        --save data/results/rm_epochs_cpu.json          # ~50 s per epoch and run on 2 CPU cores
    python benchmarks/rm_epochs.py --run runs/n1 --epochs 6 --set "" --set lr=1e-3 --set batch_prompts=16
    python benchmarks/rm_epochs.py --show data/results/rm_epochs_cpu.json

Each ``--run`` is a finished `minirlhf run` folder. Its ``rm/rankings.jsonl`` (the labelers' rankings
the run trained on) and ``rm/heldout.jsonl`` (held-out rankings with gold utilities) are read back, and
a reward model is trained from the run's SFT model with the run's `RMConfig` (`configs_of`) but
``epochs`` changed (and the `RMConfig` fields of each ``--set``: ``name=value`` pairs, commas between),
then measured as `minirlhf run` measures it: held-out accuracy against gold (on
pairs gold does not tie) and against a fresh labeler. The run's own setting reproduces its own
reward model on the machine that made it. ``--out DIR`` keeps the reward models (``DIR/RUN/epochs_E``),
so that `benchmarks/ppo_sweep.py` can train PPO against them (a copy of the run folder with ``rm/``
pointing there). Prints one JSON line; ``--save`` also writes it with the command, commit and device.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def measure(run: Path, epochs: int, out: Path | None, device: str, setting: str = "") -> dict:
    """The run's reward model trained again for ``epochs`` epochs on its own rankings, with the `RMConfig`
    fields of ``setting`` ("lr=1e-3,batch_prompts=16"; "" for none) changed."""
    from minirlhf.ladder import config_changes
    from minirlhf.io import read_json, read_jsonl
    from minirlhf.reward import RMConfig, fit_reward_model
    from minirlhf.run import configs_of
    summary = read_json(run / "summary.json")
    config = replace(configs_of(summary, device)[1], **config_changes(setting, RMConfig, "--set"), epochs=epochs)
    rankings = read_jsonl(run / "rm" / "rankings.jsonl", required=("prompt", "responses", "ranking"))
    heldout = read_jsonl(run / "rm" / "heldout.jsonl", required=("prompt", "responses", "ranking", "utilities"))
    info = read_json(run / "rm" / "rm_info.json")
    tau, init = info["labelers_tau"], Path(info["init"])       # the reward model's own start (SFT, or --rm-model's)
    if not (init / "config.json").is_file():
        init = run / "sft"
    name = f"epochs_{epochs}" + (f"_{setting.replace(',', '_').replace('=', '')}" if setting else "")
    target = out / run.name / name if out is not None else None
    fit = fit_reward_model(init, rankings, heldout, tau, config, target, progress=False)
    m = fit["metrics"]
    return {"run": str(run), "seed": summary["seed"], "epochs": epochs, "set": setting, "train_prompts": len(rankings),
            "accuracy_gold": m["accuracy_gold"], "accuracy_labelers": m["accuracy_labelers"],
            "gold_tie_share": m["gold_tie_share"], "margin": m.get("margin"), "train_s": round(fit["info"]["train_s"], 1),
            "run_accuracy_gold": summary["rm"]["accuracy_gold"]}


def table(result: dict) -> str:
    """Markdown: one row per number of epochs and setting, the runs side by side, and their mean."""
    runs = sorted({r["run"] for r in result["rows"]})
    head = ("| epochs | set | " + " | ".join(f"{r} vs gold | vs labelers" for r in runs)
            + " | mean vs gold | mean vs labelers | train s (mean) |")
    lines = [head, "|" + "---|" * (2 * len(runs) + 5)]
    for e, setting in sorted({(r["epochs"], r.get("set", "")) for r in result["rows"]}):
        rows = {r["run"]: r for r in result["rows"] if r["epochs"] == e and r.get("set", "") == setting}
        cells = " | ".join(f"{rows[r]['accuracy_gold']:.3f} | {rows[r]['accuracy_labelers']:.3f}" if r in rows else "– | –"
                           for r in runs)
        mean = statistics.mean(r["accuracy_gold"] for r in rows.values())
        labelers = statistics.mean(r["accuracy_labelers"] for r in rows.values())
        secs = statistics.mean(r["train_s"] for r in rows.values())
        lines.append(f"| {e} | {setting or '–'} | {cells} | {mean:.3f} | {labelers:.3f} | {secs:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", nargs="+", default=[], help="finished `minirlhf run` folders")
    p.add_argument("--epochs", type=int, nargs="+", default=[2, 4, 6], help="numbers of epochs to try")
    p.add_argument("--set", dest="settings", action="append", default=None, metavar="SETTING",
                   help='RMConfig fields to change, "name=value,name=value" ("" for none, the default); repeatable')
    p.add_argument("--out", default=None, help="keep the reward models here (default: not kept)")
    from minirlhf.ladder import emit_result, provenance, require_run_folders, result_options, show_saved
    result_options(p)
    a = p.parse_args(argv)
    if a.show:
        return show_saved(a.show, table)
    if any(e < 1 for e in a.epochs):
        p.error(f"--epochs takes positive numbers, not {a.epochs}")
    from minirlhf.ladder import config_changes
    from minirlhf.reward import RMConfig
    settings = a.settings or [""]
    for setting in settings:                                     # every setting checked before any training
        if "epochs" in config_changes(setting, RMConfig, "--set"):
            p.error(f"--set {setting!r}: the number of epochs is --epochs")
    require_run_folders(p, a.run, ("summary.json", "rm/rankings.jsonl", "rm/heldout.jsonl", "rm/rm_info.json"),
                        "a finished `minirlhf run` folder")
    runs = [Path(r) for r in a.run]
    t0 = time.perf_counter()
    rows = [measure(run, e, Path(a.out) if a.out else None, a.device, setting)
            for run in runs for e in a.epochs for setting in settings]
    result = {**provenance("rm_epochs", argv, a.device), "rows": rows, "seconds": round(time.perf_counter() - t0, 1)}
    emit_result(result, a.save)
    print(table(result))
    return result


if __name__ == "__main__":
    main()
