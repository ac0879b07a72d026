"""The main job, ``minirlhf run``: every stage built so far, written to one run folder.

Stages now: the world (its labelers' calibration) and the pretrained base model judged
by the gold preference. The folder holds CONTRACT's ``summary.json``, ``metrics.jsonl``,
``report.md`` and ``plots/*.png``; stages that do not exist yet are absent.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from tqdm.auto import tqdm

from . import io
from .judge import EVAL_TEMPERATURE, judge_model
from .paths import base_model_dir, world_dir
from .settings import get_settings

RATE_KEYS = ("helpful_rate", "false_fact_rate", "harmful_rate", "more_questions_rate")


def plot_rates(models: dict[str, dict], path: Path) -> Path:
    """Grouped bars of the judge's rates, one group per rate, one bar per model."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(models)
    for i, (name, r) in enumerate(models.items()):
        xs = [k + i * width for k in range(len(RATE_KEYS))]
        bars = ax.bar(xs, [r[k] for k in RATE_KEYS], width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(RATE_KEYS))],
                  [k.replace("_rate", "").replace("_", " ") for k in RATE_KEYS])
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of held-out prompts")
    ax.set_title("Gold judge on held-out prompts")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(out: Path, summary: dict, base_info: dict, samples: list[dict]) -> Path:
    """``report.md``: the tables and plots of the run, produced from its own numbers."""
    lab = summary["world"]["labelers"]
    lines = [
        "# minirlhf run report", "",
        f"seed {summary['seed']} · device `{summary['device']}` · fast={summary['fast']} · "
        f"total {summary['timings_s']['total']:.1f} s", "",
        "## The world's labelers", "",
        "| tau | labeler–labeler agreement | labeler–gold agreement | gold tie share |", "|---|---|---|---|",
        f"| {lab['tau']} | {lab['labeler_labeler_agreement_fresh']:.3f} | "
        f"{lab['labeler_gold_agreement_fresh']['all']:.3f} | {lab['labeler_gold_agreement_fresh']['gold_tie_share']:.3f} |",
        "", "## The base model", "",
        "| parameters | tokens seen | held-out corpus loss | pretraining time | device |", "|---|---|---|---|---|",
        f"| {base_info.get('params', '?'):,} | {base_info.get('tokens_seen', '?'):,} | "
        f"{base_info.get('val_loss', float('nan')):.3f} | {base_info.get('seconds', float('nan')):.0f} s | "
        f"{base_info.get('device', '?')} |",
        "", "## Gold judge rates", "",
        "| model | n | helpful | false fact | harmful | more questions | mean gold utility |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("base", "sft", "ppo"):
        if name in summary:
            r = summary[name]
            lines.append(f"| {name} | {r['n']} | " + " | ".join(f"{r[k]:.3f}" for k in RATE_KEYS)
                         + f" | {r['gold_utility_mean']:.3f} |")
    lines += ["", "![judge rates](plots/judge_rates.png)", "", "## Samples from the base model", ""]
    for s in samples:
        lines += [f"- **{s['prompt']}**  ", f"  → {s['response']}  *(U = {s['utility']:+.2f})*"]
    path = out / "report.md"
    io.write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def run(out: str | Path = "runs/latest", fast: bool | None = None, model: str | None = None,
        device: str | None = None, seed: int = 0) -> dict:
    """Run the pipeline built so far; returns the summary written to ``out/summary.json``."""
    settings = get_settings(fast=fast, device=device, seed=seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model_path = Path(model) if model else base_model_dir("tiny")
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    n_eval = 100 if settings.fast else None

    with tqdm(total=2, desc="minirlhf run", unit="stage") as bar:
        bar.set_postfix_str("world")
        world = json.loads((world_dir() / "world.json").read_text())
        bar.update()

        bar.set_postfix_str("judging the base model")
        t = time.perf_counter()
        base = judge_model(model_path, n=n_eval, device=settings.device, seed=seed, with_samples=True)
        timings["eval"] = time.perf_counter() - t
        bar.update()

    samples = base.pop("samples")
    base_info_path = model_path / "pretrain_info.json"
    base_info = json.loads(base_info_path.read_text()) if base_info_path.exists() else {}
    timings["total"] = time.perf_counter() - t_start
    summary = {
        "seed": seed, "device": settings.device, "fast": settings.fast,
        "base": {"model": str(model_path), **{k: v for k, v in base.items() if k != "model"}},
        "world": {"labelers": world["labelers"], "eval_temperature": EVAL_TEMPERATURE},
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    io.write_jsonl_atomic(out / "metrics.jsonl", [{"stage": "eval", "step": 0, "model": "base",
                                                  **{k: base[k] for k in RATE_KEYS + ("gold_utility_mean",)}}])
    io.write_jsonl_atomic(out / "samples.jsonl", [{"model": "base", **s} for s in samples])
    plot = plot_rates({"base": base}, out / "plots" / "judge_rates.png")
    io.write_json_atomic(out / "summary.json", summary)
    report = write_report(out, summary, base_info, samples[:8])
    print(f"report: {report}\nplots:  {plot.parent}\nsummary: {out / 'summary.json'}")
    return summary
