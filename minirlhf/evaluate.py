"""Win rates with honest statistics.

The gold win rate of A over B (CONTRACT): over held-out prompts, one sample per model per
prompt; the share where U(A) > U(B), ties counting 1/2. Its 95% confidence interval is a
percentile bootstrap over prompts.
"""
from __future__ import annotations

import random


def outcome(a: float, b: float) -> float:
    """1 if score a beats score b, 1/2 for a tie, else 0."""
    return 1.0 if a > b else 0.5 if a == b else 0.0


def outcomes(scores_a: list[float], scores_b: list[float]) -> list[float]:
    """Per prompt: 1 if A beats B, 1/2 for a tie, 0 if B wins."""
    if len(scores_a) != len(scores_b) or not scores_a:
        raise ValueError(f"need paired, non-empty scores (got {len(scores_a)} and {len(scores_b)})")
    return [outcome(a, b) for a, b in zip(scores_a, scores_b)]


def bootstrap_means(values: list[float], n_boot: int = 2000, seed: int = 0) -> list[float]:
    """The means of ``n_boot`` resamples of ``values`` drawn with replacement, sorted."""
    rng = random.Random(seed)
    n = len(values)
    return sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(n_boot))


def bootstrap_ci(values: list[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> list[float]:
    """Percentile bootstrap interval of the mean of ``values``."""
    means = bootstrap_means(values, n_boot, seed)
    lo = means[int((1 - level) / 2 * n_boot)]
    hi = means[min(n_boot - 1, int((1 + level) / 2 * n_boot))]
    return [round(lo, 4), round(hi, 4)]


def win_rate(scores_a: list[float], scores_b: list[float], seed: int = 0, n_boot: int = 2000,
             judge: str = "gold") -> dict:
    """CONTRACT's win-rate record: the rate under the judge's name (``gold``), ``ci95``, ``n``,
    ``wins``, ``ties``, ``losses``."""
    o = outcomes(scores_a, scores_b)
    n = len(o)
    return {judge: round(sum(o) / n, 4), "ci95": bootstrap_ci(o, n_boot, seed), "n": n,
            "wins": round(o.count(1.0) / n, 4), "ties": round(o.count(0.5) / n, 4),
            "losses": round(o.count(0.0) / n, 4)}


def labeler_outcomes(utilities_a: list[float], utilities_b: list[float], tau: float, seed: int) -> list[float]:
    """Per prompt, 1 if a fresh simulated labeler (seeded ``seed``, never a reward model's
    training labeler) prefers A, else 0."""
    from .world.labelers import Labeler
    labeler = Labeler(tau, seed=seed)
    return [1.0 - labeler.compare(x, y) for x, y in zip(utilities_a, utilities_b)]


def judged_win_rate(prompts: list[str], responses_a: list[str], responses_b: list[str], seed: int = 0,
                    tau: float | None = None, rm=None) -> dict:
    """Win rate of A over B on the same prompts: gold (with its CI), a fresh draw of the
    simulated labelers (``labelers``) and, given ``rm=(model, tokenizer)``, the learned RM (``rm``)."""
    from .world.gold import utility
    if tau is None:
        from .labeling import default_tau
        tau = default_tau()
    ua = [utility(p, r) for p, r in zip(prompts, responses_a)]
    ub = [utility(p, r) for p, r in zip(prompts, responses_b)]
    w = win_rate(ua, ub, seed=seed)
    w["labelers"] = round(sum(labeler_outcomes(ua, ub, tau, 10_000 + seed)) / len(ua), 4)
    if rm is not None:
        from .reward import score
        w["rm"] = win_rate(score(*rm, prompts, responses_a).tolist(), score(*rm, prompts, responses_b).tolist(),
                           seed=seed)["gold"]
    return w


def against_run(run_dir, policy, ref_policy, tokenizer, versus: tuple[str, ...] = ("sft", "base"), rm=None) -> dict:
    """A policy judged as `minirlhf run` judged its PPO policy: the run's evaluation prompts
    (``samples.jsonl``) sampled with the run's seed and evaluation temperature, the KL to
    ``ref_policy`` measured as ``ppo.kl``, the gold rates, and win rates over the run's own answers
    ``versus`` (the first is required, the others where the run has them) judged by gold, by labelers of the run's tau and, given
    ``rm=(model, tokenizer)``, by that reward model. Returns ``rows`` (the run's samples), ``prompts``,
    ``answers``, ``kl``, ``rates`` and ``win_rates`` keyed ``vs_sft``, ``vs_base`` ..."""
    from pathlib import Path

    from .io import read_json, read_jsonl
    from .judge import EVAL_MAX_NEW_TOKENS, EVAL_TEMPERATURE, rates
    from .ppo import samples_and_kl
    run = Path(run_dir)
    summary = read_json(run / "summary.json")
    rows = read_jsonl(run / "samples.jsonl", required=("prompt", *versus[:1]))
    prompts, seed = [r["prompt"] for r in rows], summary["seed"]
    answers, kl = samples_and_kl(policy, ref_policy, tokenizer, prompts, EVAL_TEMPERATURE, EVAL_MAX_NEW_TOKENS,
                                 seed=seed)
    tau = summary.get("world", {}).get("labelers", {}).get("tau")    # the labelers of the run's win rates
    return {"rows": rows, "prompts": prompts, "answers": answers, "kl": kl, "rates": rates(prompts, answers),
            "win_rates": {f"vs_{b}": judged_win_rate(prompts, answers, [r[b] for r in rows], seed, tau, rm=rm)
                          for b in versus if b in rows[0]}}


def people_win_rate(rows: list[dict], a: str, b: str, seed: int = 0) -> dict:
    """Win rate of model ``a`` over ``b`` from blind A/B labels (``labeling.make_items(..., sources=(a, b))``).

    A choice of the response from ``a`` counts 1, a tie 1/2, ``b`` 0; skips are left out.
    Returns the record of ``win_rate`` under the judge name ``people``, or ``n = 0`` if no label counts.
    """
    outcomes_ = []
    for r in rows:
        if r.get("choice") == "skip" or {r.get("a_source"), r.get("b_source")} != {a, b}:
            continue
        if r["choice"] == "tie":
            outcomes_.append(0.5)
        else:
            outcomes_.append(1.0 if r[f"{r['choice']}_source"] == a else 0.0)
    if not outcomes_:
        return {"people": None, "ci95": None, "n": 0}
    return win_rate(outcomes_, [0.5] * len(outcomes_), seed=seed, judge="people")


def document_batch(tokenizer, docs: list[str], device, max_length: int = 128) -> tuple:
    """Corpus documents + eos, right-padded, and their next-token labels (-100 on padding)."""
    enc = tokenizer([d + tokenizer.eos_token for d in docs], return_tensors="pt", padding=True,
                    add_special_tokens=False, padding_side="right", truncation=True, max_length=max_length).to(device)
    return enc, enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)


def corpus_loss(model, tokenizer, docs: list[str], batch_size: int = 32, max_length: int = 128) -> float:
    """Mean next-token loss on held-out corpus documents: the alignment tax shows as a rise."""
    import torch
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(docs), batch_size):
            enc, labels = document_batch(tokenizer, docs[i:i + batch_size], model.device, max_length)
            logits = model(**enc).logits[:, :-1].float()
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                                     ignore_index=-100, reduction="sum")
            total += loss.item()
            count += int((labels[:, 1:] != -100).sum())
    return total / max(count, 1)
