"""Figures shared by the run report and the notebooks. Each returns a matplotlib Figure."""
from __future__ import annotations

from pathlib import Path

RATE_KEYS = ("helpful_rate", "false_fact_rate", "harmful_rate", "more_questions_rate")


def _plt():
    import matplotlib.pyplot as plt
    return plt


def judge_rates(models: dict[str, dict]):
    """Grouped bars of the gold judge's rates, one group per rate, one bar per model."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(models)
    for i, (name, r) in enumerate(models.items()):
        bars = ax.bar([k + i * width for k in range(len(RATE_KEYS))], [r[k] for k in RATE_KEYS], width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(RATE_KEYS))],
                  [k.replace("_rate", "").replace("_", " ") for k in RATE_KEYS])
    ax.set(ylim=(0, 1.05), ylabel="share of held-out prompts", title="Gold judge on held-out prompts")
    ax.legend()
    fig.tight_layout()
    return fig


def loss_curves(history: list[dict], title: str = "SFT"):
    """Training loss per step and validation loss where it was measured."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    val = [(h["step"], h["val_loss"]) for h in history if "val_loss" in h]
    if train:
        ax.plot(*zip(*train), lw=1, alpha=0.7, label="train loss")
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss")
    ax.set(xlabel="step", ylabel="loss (response tokens)", title=title)
    ax.legend()
    fig.tight_layout()
    return fig


def _smooth(values: list[float], parts: int = 15) -> list[float]:
    """Trailing mean over a window of len/parts steps (at least 1)."""
    window = max(1, len(values) // parts)
    return [sum(values[max(0, i - window + 1):i + 1]) / len(values[max(0, i - window + 1):i + 1])
            for i in range(len(values))]


def rm_training(history: list[dict], metrics: dict, ceiling: float | None = None):
    """RM training accuracy (smoothed) with the held-out accuracies as horizontal lines."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([h["step"] for h in history], _smooth([h["accuracy"] for h in history]),
            label="train pairs (vs their labeler)")
    ax.axhline(metrics["accuracy_labelers"], color="C1", ls="--", label="held-out vs fresh labelers")
    ax.axhline(metrics["accuracy_gold"], color="C2", ls="--", label="held-out vs gold (non-tied)")
    if ceiling is not None:
        ax.axhline(ceiling, color="grey", ls=":", label="a labeler vs gold (ceiling)")
    ax.set(xlabel="step", ylabel="pairwise accuracy", ylim=(0.4, 1.0), title="Reward model")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def dpo_training(history: list[dict], implicit: dict | None = None, rm: dict | None = None):
    """DPO's loss and its implicit reward's accuracy on the training pairs (smoothed); the held-out
    accuracies of the implicit reward (``implicit``: `reward.evaluate`'s record) and of the run's
    reward model (``rm``: its ``accuracy_gold``) as horizontal lines."""
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    steps = [h["step"] for h in history]
    left.plot(steps, _smooth([h["loss"] for h in history]), label="loss (smoothed)")
    left.axhline(0.6931, color="grey", ls=":", lw=1, label="log 2: the untrained policy")
    left.set(xlabel="step", ylabel="DPO loss", title="DPO loss")
    left.legend(fontsize=8)
    right.plot(steps, _smooth([h["rewards/accuracies"] for h in history]), label="train pairs (vs their labeler)")
    if implicit:
        right.axhline(implicit["accuracy_labelers"], color="C1", ls="--", label="held-out vs fresh labelers")
        right.axhline(implicit["accuracy_gold"], color="C2", ls="--", label="held-out vs gold (non-tied)")
    if rm and "accuracy_gold" in rm:
        right.axhline(rm["accuracy_gold"], color="C3", ls=":", label="the reward model, held-out vs gold")
    right.set(xlabel="step", ylabel="pairwise accuracy", ylim=(0.4, 1.0), title="DPO's implicit reward")
    right.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def reward_histogram(chosen: list[float], rejected: list[float]):
    """Distributions of r(x, y_w) and r(x, y_l) on held-out pairs."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    lo, hi = min(chosen + rejected), max(chosen + rejected)
    bins = [lo + (hi - lo) * i / 30 for i in range(31)]
    ax.hist(chosen, bins=bins, alpha=0.6, label="chosen (labeler's winner)")
    ax.hist(rejected, bins=bins, alpha=0.6, label="rejected")
    ax.set(xlabel="reward (demonstrations average 0)", ylabel="pairs", title="Held-out rewards")
    ax.legend()
    fig.tight_layout()
    return fig


def win_rates(records: dict[str, dict], key: str = "gold"):
    """Win-rate bars with 95% CIs; 0.5 is a draw."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = list(records)
    rates = [records[n][key] for n in names]
    err = [[r - records[n]["ci95"][0] for n, r in zip(names, rates)],
           [records[n]["ci95"][1] - r for n, r in zip(names, rates)]]
    bars = ax.bar(names, rates, yerr=err, capsize=6, color="C0")
    ax.bar_label(bars, fmt="%.2f", padding=8)
    ax.axhline(0.5, color="grey", ls=":")
    ax.set(ylim=(0, 1.1), ylabel=f"{key} win rate (ties = 1/2)", title="Win rates with 95% CIs")
    fig.tight_layout()
    return fig


def rounds(records: list[dict]):
    """Steps 2 and 3 iterated (``summary["rounds"]``): each round's PPO win rate over SFT (gold, 95% CI)
    and its reward model's held-out accuracy against gold, round by round."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    x = [r["round"] for r in records]
    w = [r["ppo_vs_sft"]["gold"] for r in records]
    err = [[v - r["ppo_vs_sft"]["ci95"][0] for v, r in zip(w, records)],
           [r["ppo_vs_sft"]["ci95"][1] - v for v, r in zip(w, records)]]
    ax.errorbar(x, w, yerr=err, marker="o", capsize=5, label="PPO vs SFT (gold win rate)")
    ax.plot(x, [r["rm"]["accuracy_gold"] for r in records], marker="s", label="RM vs gold (held-out pairs)")
    ax.axhline(0.5, color="grey", ls=":")
    ax.set(xticks=x, xlabel="round (steps 2 and 3 again, on the last policy's answers)", ylim=(0.3, 1.0),
           title="Iterating the reward model and the policy")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


PPO_PANELS = (("objective/scores", "RM score"), ("objective/gold", "gold utility"), ("objective/kl", "KL to SFT (nats)"),
              ("objective/entropy", "entropy (nats/answer)"), ("val/response_length", "answer length (tokens)"),
              ("policy/clipfrac_avg", "clip fraction"), ("loss/value_avg", "value loss"))


def ppo_curves(history: list[dict], panels=PPO_PANELS, axes=None):
    """PPO's training curves, one small panel per metric (the RM score and gold share a colour scheme)."""
    plt = _plt()
    panels = [(k, t) for k, t in panels if any(k in h for h in history)] or list(panels)
    if axes is None:
        cols = min(4, len(panels))
        fig, axes = plt.subplots((len(panels) + cols - 1) // cols, cols, figsize=(3.2 * cols, 2.4 * ((len(panels) + cols - 1) // cols)),
                                 squeeze=False)
        axes = axes.ravel()
    fig = axes[0].figure
    for ax, (key, title) in zip(axes, panels):
        ax.clear()
        pts = [(h["step"], h[key]) for h in history if key in h]
        if pts:
            ax.plot(*zip(*pts), color="C2" if key == "objective/gold" else "C0", lw=1.2)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def reward_vs_kl(runs: dict[str, list[dict]]):
    """RM score and gold utility against KL for one or more PPO runs: reward hacking shows as
    gold falling while the RM score still rises."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharex=True)
    for i, (name, history) in enumerate(runs.items()):
        kl = [h["objective/kl"] for h in history]
        axes[0].plot(kl, [h["objective/scores"] for h in history], "o-", ms=2, color=f"C{i}", label=name)
        axes[1].plot(kl, [h.get("objective/gold", float("nan")) for h in history], "o-", ms=2, color=f"C{i}", label=name)
    axes[0].set(xlabel="KL to SFT (nats)", ylabel="RM score", title="What PPO optimises")
    axes[1].set(xlabel="KL to SFT (nats)", ylabel="gold utility", title="What people want")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


LADDER_LABELS = {"base": "base (GPT)", "sft": "SFT", "ppo": "PPO", "ppo_ptx": "PPO-ptx"}


def ladder(analysis: dict, key: str = "gold"):
    """InstructGPT's Figure 1 in miniature: each model's win rate against the largest SFT model,
    by parameter count, with 95% CIs (left); held-out corpus loss by size (right)."""
    plt = _plt()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    sizes = list(analysis["sizes"])
    params = [analysis["sizes"][s]["params"] for s in sizes]
    for i, (model, by_size) in enumerate(analysis["figure1"].items()):
        have = [s for s in sizes if s in by_size]                   # PPO-ptx may be missing at some sizes
        rates = [by_size[s][key] for s in have]
        err = [[r - by_size[s]["ci95"][0] for s, r in zip(have, rates)],
               [by_size[s]["ci95"][1] - r for s, r in zip(have, rates)]]
        ax.errorbar([analysis["sizes"][s]["params"] for s in have], rates, yerr=err, marker="o", capsize=4,
                    label=LADDER_LABELS.get(model, model), color=f"C{i}")
    ax.axhline(0.5, color="grey", ls=":")
    ax.set_xscale("log")
    ax.set_xticks(params, [f"{s}\n{p / 1e6:.1f}M" for s, p in zip(sizes, params)])
    ax.minorticks_off()
    ax.set(ylim=(0, 1), ylabel=f"{key} win rate vs {analysis['baseline']}", title="Win rate against the largest SFT model")
    ax.legend(fontsize=8)
    for i, model in enumerate(analysis["figure1"]):
        have = [s for s in sizes if model in analysis["table"][s]]
        ax2.plot([analysis["sizes"][s]["params"] for s in have], [analysis["table"][s][model]["corpus_loss"] for s in have],
                 marker="o", color=f"C{i}", label=LADDER_LABELS.get(model, model))
    ax2.set_xscale("log")
    ax2.set_xticks(params, sizes)
    ax2.minorticks_off()
    ax2.set(ylabel="held-out corpus loss", title="Alignment tax (lower is better)")
    fig.tight_layout()
    return fig


RM_PAIR_KINDS = {"close": "close pairs", "content_passage": "content: passage tasks", "content_other": "content: other"}


def rm_limits(result: dict):
    """The reward model's held-out accuracy against gold by kind of pair, one group per training
    variant (``benchmarks/rm_limits.py``'s result)."""
    plt = _plt()
    variants = list(result["variants"])
    fig, ax = plt.subplots(figsize=(9, 3.6))
    width = 0.8 / len(RM_PAIR_KINDS)
    for i, (kind, label) in enumerate(RM_PAIR_KINDS.items()):
        bars = ax.bar([v + i * width for v in range(len(variants))],
                      [result["variants"][name][f"accuracy_gold_{kind}"] or 0 for name in variants], width, label=label)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.axhline(0.5, color="grey", ls=":")
    ax.axhline(0.75, color="C3", ls="--", lw=1, label="target overall")
    ax.set_xticks([v + 0.4 - width / 2 for v in range(len(variants))],
                  [f"{name}\n{result['variants'][name]['train_prompts']} prompts" for name in variants], fontsize=8)
    ax.set(ylim=(0, 1.12), ylabel="accuracy vs gold", title="What the reward model gets right, by kind of pair")
    ax.legend(fontsize=8, loc="upper center", ncol=4)
    fig.tight_layout()
    return fig


def best_of_n(curves: dict[str, list[dict]], ppo: dict[str, tuple[float, float]] | None = None, key: str = "gold",
              dpo: dict[str, list[tuple[float, float]]] | None = None, title: str = "What the reward model can buy"):
    """Gold win rate over one SFT sample against KL from the SFT policy: best-of-n picked by each
    reward model (``best_of_n.curve`` records, x = the KL bound) and by gold; PPO policies as stars
    (name -> (``ppo.kl``, win rate over SFT)); DPO policies as diamonds joined by a line (name ->
    [(KL to SFT, win rate over SFT), ...], e.g. one per beta). A name's marks take the colour of the
    curve of the same name."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4))
    colour = {name: f"C{i}" for i, name in enumerate(curves)}
    for name, curve in curves.items():
        ax.plot([c["kl_bound"] for c in curve], [c["rm"][key] for c in curve], "o-", color=colour[name],
                label=f"best-of-n by RM: {name}")
    first = next(iter(curves.values()), [])
    ax.plot([c["kl_bound"] for c in first], [c["gold"][key] for c in first], "s--", color="grey",
            label="best-of-n by gold (the ceiling)")
    for c in first:
        ax.annotate(f"n={c['n']}", (c["kl_bound"], c["gold"][key]), textcoords="offset points", xytext=(4, -10),
                    fontsize=7, color="grey")
    for j, (name, (kl, rate)) in enumerate((ppo or {}).items()):
        ax.plot([kl], [rate], "*", ms=13, mec="black", mew=0.5, color=colour.get(name, f"C{len(curves) + j}"),
                label=f"PPO: {name}")
    for j, (name, points) in enumerate((dpo or {}).items()):
        ax.plot(*zip(*sorted(points)), "D-", ms=7, lw=1, mec="black", mew=0.5, color=colour.get(name, f"C{len(curves) + j}"),
                label=f"DPO: {name}")
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    ax.axhline(0.65, color="C3", ls="--", lw=1, label="target: PPO over SFT")
    ax.set(xlabel="KL from the SFT policy (nats; best-of-n: its upper bound)",
           ylabel="gold win rate over one SFT sample", title=title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def save(fig, path: str | Path) -> Path:
    """Save a figure (creating the folder) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path
