"""Best-of-n: what a reward model can buy without any RL.

Draw n answers from the SFT policy for each prompt and keep the one the reward model scores
highest. No weights change, so this measures the reward model as a *decision maker* rather
than as a pairwise classifier: its held-out pairwise accuracy says how often it orders two
answers the way gold does; best-of-n says how much better than one SFT sample its favourite
answer is, which is the thing PPO then chases.

Two curves against n, each as a gold win rate over one SFT sample (the same reference the
run's `ppo_vs_sft` uses):

* ``rm``: the answer the learned RM picks;
* ``gold``: the answer gold picks, the ceiling that the SFT policy's own samples allow.

The gap between them is the reward model's share of what is missing; the gap between
``gold`` and 1 is the policy's. Best-of-n drifts from the SFT policy by at most

    KL(best-of-n || pi_SFT) <= log n - (n - 1) / n

nats (the expression used since Stiennon et al., 2020; Beirami et al., 2024, show that it is an
upper bound, not the KL itself), so a PPO policy can be placed on the same KL axis (`ppo.kl`).
With no ties, its win rate over one sample is at most n / (n + 1) (Beirami et al., 2024).
"""
from __future__ import annotations

import math
from pathlib import Path

from .evaluate import win_rate
from .judge import EVAL_MAX_NEW_TOKENS, EVAL_TEMPERATURE, judge_responses, summarize

N_VALUES = (1, 2, 4, 8, 16)   # each doubling of n adds less than log 2 = 0.69 nats to the KL bound


def kl_bound(n: int) -> float:
    """log n - (n - 1) / n: the most best-of-n can drift from the policy it samples, in nats."""
    if n < 1:
        raise ValueError(f"best-of-n needs n >= 1, not {n}")
    return math.log(n) - (n - 1) / n


def pick(scores: list[list[float]], n: int) -> list[int]:
    """Per prompt, the index of the best of its first ``n`` scores (the first one on a tie).

    scores[p][i]: the score of prompt p's i-th candidate.
    """
    short = [p for p, s in enumerate(scores) if len(s) < n]
    if short:
        raise ValueError(f"prompt {short[0]} has {len(scores[short[0]])} candidates, fewer than n = {n}")
    return [max(range(n), key=lambda i: s[i]) for s in scores]


def _mean_words(answers: list[str]) -> float:
    return round(sum(len(a.split()) for a in answers) / max(len(answers), 1), 2)


def candidates(model, tokenizer, prompts: list[str], n: int, seed: int = 0,
               temperature: float = EVAL_TEMPERATURE, max_new_tokens: int = EVAL_MAX_NEW_TOKENS) -> list[list[str]]:
    """n sampled answers per prompt, as the evaluation samples them: candidates[p][i].

    Draw i uses seed ``seed + 1 + i``, so with the run's seed none of them is the run's own
    evaluation sample (seed ``seed``), which is the reference they are compared with.
    """
    from .generation import generate
    draws = [generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                      seed=seed + 1 + i) for i in range(n)]
    return [list(answers) for answers in zip(*draws)]


def curve(prompts: list[str], cands: list[list[str]], rm_scores: list[list[float]], reference: list[str],
          ns: tuple[int, ...] = N_VALUES, seed: int = 0) -> list[dict]:
    """Best-of-n by the RM and by gold, for each n, against one reference answer per prompt.

    Returns one record per n: ``n``, ``kl_bound``, ``rm`` and ``gold`` (each ``win_rate``'s record
    over ``reference``, judged by gold), ``rm_rates`` (the judge's rates of the RM's picks) and
    ``rm_words``, ``gold_words`` (the mean length of each one's picks, in words: a reward model's
    taste for length shows here).
    """
    if not (len(prompts) == len(cands) == len(rm_scores) == len(reference)):
        raise ValueError(f"need one row per prompt: {len(prompts)} prompts, {len(cands)} candidate rows, "
                         f"{len(rm_scores)} score rows, {len(reference)} reference answers")
    js = [judge_responses([p] * len(row), row) for p, row in zip(prompts, cands)]   # each candidate judged once
    u = [[j.utility for j in row] for row in js]
    u_ref = [j.utility for j in judge_responses(prompts, reference)]
    out = []
    for n in ns:
        by_rm, by_gold = pick(rm_scores, n), pick(u, n)
        out.append({"n": n, "kl_bound": round(kl_bound(n), 4),
                    "rm": win_rate([row[i] for row, i in zip(u, by_rm)], u_ref, seed=seed),
                    "gold": win_rate([row[i] for row, i in zip(u, by_gold)], u_ref, seed=seed),
                    "rm_rates": summarize([row[i] for row, i in zip(js, by_rm)]),
                    "rm_words": _mean_words([row[i] for row, i in zip(cands, by_rm)]),
                    "gold_words": _mean_words([row[i] for row, i in zip(cands, by_gold)])})
    return out


def measure(policy, tokenizer, reward_fn, prompts: list[str], reference: list[str], ns: tuple[int, ...] = N_VALUES,
            seed: int = 0) -> list[dict]:
    """``curve`` for a policy in memory: max(ns) ``candidates`` per prompt, scored by ``reward_fn``
    (any ``(prompts, responses) -> scores``, e.g. `ppo.LearnedReward`)."""
    k = max(ns)
    cands = candidates(policy, tokenizer, prompts, k, seed=seed)
    flat = reward_fn([p for p, row in zip(prompts, cands) for _ in row], [y for row in cands for y in row])
    flat = flat.tolist() if hasattr(flat, "tolist") else list(flat)
    return curve(prompts, cands, [flat[j * k:(j + 1) * k] for j in range(len(prompts))], reference, ns, seed)


def run_best_of_n(sft_path: str | Path, rm_path: str | Path, prompts: list[str], reference: list[str],
                  ns: tuple[int, ...] = N_VALUES, seed: int = 0, device: str = "cpu") -> list[dict]:
    """``measure`` for a saved SFT policy and reward model (Hugging Face folders, as `minirlhf run` writes them)."""
    from .generation import load_model
    from .ppo import LearnedReward
    policy, tokenizer = load_model(sft_path, device=device)
    return measure(policy, tokenizer, LearnedReward.load(rm_path, device=device), prompts, reference, ns, seed)
