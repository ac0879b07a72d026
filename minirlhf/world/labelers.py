"""Simulated labelers: noisy judges of the hidden gold utility.

A labeler prefers A to B with probability

    P(A > B) = sigmoid((U(A) - U(B)) / tau)

(a Bradley-Terry model on the gold utility U). A ranking of K responses is drawn from
the matching Plackett-Luce model: sort by U/tau plus Gumbel noise, whose pairwise
marginals are exactly the sigmoid above. ``tau`` is fitted so that two independent
labelers agree on 72.6% of comparisons, the inter-annotator agreement InstructGPT reports
(Ouyang et al., 2022, section 5.1: 72.6 +/- 1.5%).
"""
from __future__ import annotations

import math
import random
from itertools import combinations

PAPER_AGREEMENT = 0.726  # InstructGPT's inter-annotator agreement on training labels


def preference_probability(u_a: float, u_b: float, tau: float) -> float:
    """P(a labeler prefers A to B) = sigmoid((U(A) - U(B)) / tau)."""
    z = (u_a - u_b) / tau
    return 1 / (1 + math.exp(-z)) if z > -60 else 0.0


def expected_agreement(utility_pairs: list[tuple[float, float]], tau: float) -> float:
    """Chance that two independent labelers pick the same response, averaged over pairs.

    For one pair with p = P(A > B): agreement = p^2 + (1 - p)^2.
    """
    ps = [preference_probability(a, b, tau) for a, b in utility_pairs]
    return sum(p * p + (1 - p) * (1 - p) for p in ps) / len(ps)


def gold_agreement(utility_pairs: list[tuple[float, float]], tau: float) -> dict[str, float]:
    """How often one labeler agrees with the noise-free gold preference.

    ``all``: over all pairs, a gold tie counting 1/2 (what a reward model trained on
    labels could at best reach against gold); ``non_tied``: over pairs gold does not tie.
    """
    scores, non_tied = [], []
    for a, b in utility_pairs:
        p = preference_probability(max(a, b), min(a, b), tau)
        scores.append(0.5 if a == b else p)
        if a != b:
            non_tied.append(p)
    return {"all": sum(scores) / len(scores),
            "non_tied": sum(non_tied) / len(non_tied) if non_tied else float("nan"),
            "gold_tie_share": 1 - len(non_tied) / len(scores)}


def fit_tau(utility_pairs: list[tuple[float, float]], target: float = PAPER_AGREEMENT) -> float:
    """Find tau so that ``expected_agreement`` equals ``target`` (bisection on log tau).

    Agreement falls monotonically from its tau -> 0 limit (every non-tied pair decided)
    to 1/2 as tau grows; raises ValueError when the pairs cannot reach the target
    (too many exact gold ties).
    """
    lo, hi = 1e-4, 1e4
    if expected_agreement(utility_pairs, lo) < target:
        raise ValueError(f"these pairs cannot reach {target:.3f} agreement: too many gold ties")
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        if expected_agreement(utility_pairs, mid) > target:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


class Labeler:
    """One simulated labeler with its own random stream."""

    def __init__(self, tau: float, seed: int = 0, name: str = "sim"):
        self.tau, self.name, self.rng = tau, name, random.Random(seed)

    def compare(self, u_a: float, u_b: float) -> int:
        """0 if the labeler prefers A, 1 if B."""
        return 0 if self.rng.random() < preference_probability(u_a, u_b, self.tau) else 1

    def rank(self, utilities: list[float]) -> list[int]:
        """Indices best first, drawn from Plackett-Luce with scores U / tau."""
        noisy = [u / self.tau - math.log(-math.log(max(self.rng.random(), 1e-300))) for u in utilities]
        return sorted(range(len(utilities)), key=lambda i: -noisy[i])


def ranking_to_pairs(ranking: list[int]) -> list[tuple[int, int]]:
    """All C(K, 2) (winner, loser) index pairs implied by a ranking (best first)."""
    return [(ranking[i], ranking[j]) for i, j in combinations(range(len(ranking)), 2)]
