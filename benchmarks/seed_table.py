"""The headline numbers of several `minirlhf run` folders (one per seed) as one markdown table.

    python benchmarks/seed_table.py runs/t0 runs/t1 runs/t2                      # print
    python benchmarks/seed_table.py runs/rs0 runs/rs1 runs/rs2 --save data/results/rm_small_cpu.json
    python benchmarks/seed_table.py --show data/results/rm_small_cpu.json
    python benchmarks/seed_table.py --means data/results/runs_more_now_cpu.json data/results/runs_named_cpu.json

Per run: the reward model's held-out accuracy against gold and labelers (and on the PPO policy's
answers), PPO's gold win rates over SFT and base with their 95% CIs, strict wins / ties /
losses, the final KL, the rates, and the stage times. ``--save`` keeps these rows with the
command and commit that made them, so docs can quote them. ``--means`` prints one line per saved
file: its headline numbers averaged over its runs (seeds).
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from minirlhf import io  # noqa: E402
from minirlhf.ladder import code_commit  # noqa: E402


def row(folder: str | Path) -> dict:
    """The numbers of one run folder's summary.json."""
    path = Path(folder) / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a finished `minirlhf run` folder (summary.json missing)")
    s = json.loads(path.read_text())
    w, rm = s.get("win_rates", {}), s["rm"]
    return {"run": str(folder), "commit": s.get("commit"), "seed": s["seed"], "device": s["device"], "rm_model": s.get("rm_model", {}).get("base"),
            "rm_gold": rm["accuracy_gold"], "rm_labelers": rm["accuracy_labelers"], "rm_gold_ties": rm.get("gold_tie_share"),
            "rm_on_ppo_gold": rm.get("on_ppo_samples", {}).get("accuracy_gold"),
            "rm_prior": rm.get("likelihood_prior"),
            "rm_on_ppo_labelers": rm.get("on_ppo_samples", {}).get("accuracy_labelers"),
            **{k: {x: w[k][x] for x in ("gold", "ci95", "wins", "ties", "losses", "labelers", "rm")} for k in w},
            "kl": s.get("ppo", {}).get("kl"),
            "rates": {m: {k: s[m][k] for k in ("helpful_rate", "false_fact_rate", "harmful_rate")}
                      for m in ("base", "sft", "ppo") if m in s},
            "timings_s": {k: round(v, 1) for k, v in s["timings_s"].items()},
            "rm_sft_s": s.get("rm_model", {}).get("sft_s"), "rounds": s.get("rounds")}


def table(rows: list[dict]) -> str:
    f = lambda x: "–" if x is None else f"{x:.3f}"  # noqa: E731
    ci = lambda w: f"{w['gold']:.3f} [{w['ci95'][0]:.3f}, {w['ci95'][1]:.3f}]" if w else "–"  # noqa: E731
    lines = ["| seed | RM vs gold | RM vs labelers | RM vs gold, PPO answers | PPO vs SFT (gold) | wins / ties / losses "
             "| PPO vs base (gold) | KL | helpful SFT → PPO | harmful SFT → PPO | RM stage | PPO stage | total |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p, rates, t = r.get("ppo_vs_sft"), r["rates"], r["timings_s"]
        wtl = f"{p['wins']:.3f} / {p['ties']:.3f} / {p['losses']:.3f}" if p else "–"
        lines.append(f"| {r['seed']} | {f(r['rm_gold'])} | {f(r['rm_labelers'])} | {f(r['rm_on_ppo_gold'])} | {ci(p)} | "
                     f"{wtl} | {ci(r.get('ppo_vs_base'))} | {f(r['kl'])} | "
                     f"{f(rates['sft']['helpful_rate'])} → {f(rates.get('ppo', {}).get('helpful_rate'))} | "
                     f"{f(rates['sft']['harmful_rate'])} → {f(rates.get('ppo', {}).get('harmful_rate'))} | "
                     f"{t.get('rm', 0):.0f} s | {t.get('ppo', 0):.0f} s | {t.get('total', 0):.0f} s |")
    return "\n".join(lines)


def prior_table(rows: list[dict]) -> str:
    """The likelihood prior's part (`reward.LikelihoodPrior`) of runs that used one: its weights and
    the held-out gold accuracy of the head alone, the prior alone and their sum."""
    lines = ["| seed | a (per nat of log pi_SFT) | b (per token) | head alone vs gold | prior alone vs gold | "
             "head + prior vs gold |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {q['a']:.4f} | {q['b']:.4f} | {q['accuracy_gold_head']:.3f} | "
              f"{q['accuracy_gold_prior']:.3f} | {r['rm_gold']:.3f} |" for r in rows if (q := r.get("rm_prior"))]
    return "\n".join(lines)


def rounds_table(rows: list[dict]) -> str:
    """Every round of runs made with ``--rounds N`` (``summary["rounds"]``): each round's reward model and
    its policy's gold win rate over SFT; the headline table shows the last round."""
    lines = ["| seed | round | RM vs gold | RM vs labelers | rankings | PPO vs SFT (gold) | wins / ties / losses | KL | "
             "helpful |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for x in r.get("rounds") or []:
            w = x["ppo_vs_sft"]
            lines.append(f"| {r['seed']} | {x['round']} | {x['rm']['accuracy_gold']:.3f} | {x['rm']['accuracy_labelers']:.3f} | "
                         f"{x['rm']['train_prompts']:,} | {w['gold']:.3f} [{w['ci95'][0]:.3f}, {w['ci95'][1]:.3f}] | "
                         f"{w['wins']:.3f} / {w['ties']:.3f} / {w['losses']:.3f} | {x['ppo']['kl']:.2f} | "
                         f"{x['ppo']['helpful_rate']:.3f} |")
    return "\n".join(lines)


def show(saved: dict) -> str:
    """The saved rows as markdown: the headline table, the prior's when a run used one, and every round's
    when a run iterated steps 2 and 3."""
    text = table(saved["rows"])
    if any(r.get("rm_prior") for r in saved["rows"]):
        text += "\n\n" + prior_table(saved["rows"])
    if any(r.get("rounds") for r in saved["rows"]):
        text += "\n\n" + rounds_table(saved["rows"])
    return text


MEAN_COLUMNS = (("RM vs gold", lambda r: r["rm_gold"]), ("RM vs labelers", lambda r: r["rm_labelers"]),
                ("PPO vs SFT", lambda r: r["ppo_vs_sft"]["gold"]), ("PPO vs base", lambda r: r["ppo_vs_base"]["gold"]),
                ("SFT helpful", lambda r: r["rates"]["sft"]["helpful_rate"]))


def means_table(files: list[str]) -> str:
    """One line per saved table: each headline number averaged over its runs, with how many runs."""
    lines = ["| saved runs | runs | " + " | ".join(c for c, _ in MEAN_COLUMNS) + " |",
             "|---|---|" + "---|" * len(MEAN_COLUMNS)]
    for name in files:
        rows = io.read_json(name)["rows"]
        cells = [f"{sum(get(r) for r in rows) / len(rows):.3f}" for _, get in MEAN_COLUMNS]
        lines.append(f"| {Path(name).name} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def folders_main(script: str, description: str, gather, render, argv: list[str] | None = None) -> dict:
    """The command line of a script that reads finished run folders: ``gather(folders)`` -> the saved
    dict's content (with ``made_by``: command, commit, date), ``render(saved)`` -> markdown, printed;
    ``--save JSON`` keeps it, ``--show JSON`` prints a saved one."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("runs", nargs="*", help="`minirlhf run` output folders")
    p.add_argument("--save", default=None, metavar="JSON")
    p.add_argument("--show", default=None, metavar="JSON", help="print a saved table")
    p.add_argument("--commit", default=None, help="the commit that made the runs (default: this code's)")
    args = p.parse_args(argv)
    if args.show:
        saved = io.read_json(args.show)
    elif args.runs:
        saved = {"made_by": {"command": f"python benchmarks/{script} " + " ".join(args.runs),
                             "commit": args.commit or code_commit(), "date": time.strftime("%Y-%m-%d")},
                 **gather(args.runs)}
    else:
        p.error("give run folders or --show JSON")
    print(render(saved))
    if args.save:
        io.write_json_atomic(args.save, saved)
        print(f"saved: {args.save}")
    return saved


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--means"]:
        if len(argv) < 2:
            raise SystemExit("seed_table.py --means: give saved tables (--save JSON files)")
        print(means_table(argv[1:]))
        return {"means": argv[1:]}
    return folders_main("seed_table.py", __doc__.splitlines()[0], lambda runs: {"rows": [row(r) for r in runs]},
                        show, argv)


if __name__ == "__main__":
    main()
