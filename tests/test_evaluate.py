"""Win rates and their bootstrap CIs on constructed judgements with known answers."""
import pytest

from minirlhf.evaluate import bootstrap_ci, judged_win_rate, outcomes, people_win_rate, win_rate
from minirlhf.labeling import make_items


def test_win_rate_counts_ties_as_half_and_its_ci_contains_it():
    a = [1, 1, 1, 0, 0, 2, 2, 2, 2, 2]
    b = [0, 0, 0, 0, 1, 3, 3, 2, 2, 2]
    assert outcomes(a, b) == [1, 1, 1, 0.5, 0, 0, 0, 0.5, 0.5, 0.5]
    w = win_rate(a, b, seed=0)
    assert (w["gold"], w["wins"], w["ties"], w["losses"], w["n"]) == (0.5, 0.3, 0.4, 0.3, 10)
    assert w["ci95"][0] <= 0.5 <= w["ci95"][1] and w["ci95"][0] < w["ci95"][1]


def test_bootstrap_ci_of_constant_and_of_a_known_proportion():
    assert bootstrap_ci([1.0] * 50) == [1.0, 1.0]
    values = [1.0] * 300 + [0.0] * 700                  # p = 0.3, n = 1000: normal-theory CI ~ 0.3 +- 0.028
    lo, hi = bootstrap_ci(values, n_boot=2000, seed=1)
    assert lo == pytest.approx(0.272, abs=0.008) and hi == pytest.approx(0.328, abs=0.008)


def test_win_rate_needs_paired_non_empty_scores():
    with pytest.raises(ValueError, match="paired"):
        win_rate([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="non-empty"):
        win_rate([], [])


def test_judged_win_rate_gold_and_labelers_on_clear_cases():
    prompts = ["Where does Ada live?"] * 40
    good, bad = ["Ada lives in Ashby."] * 40, ["Why do you ask, idiot? Ada lives in Elmford."] * 40
    w = judged_win_rate(prompts, good, bad, seed=0)
    assert w["gold"] == 1.0 and w["labelers"] > 0.9      # a far better answer: labelers almost always agree
    assert judged_win_rate(prompts, good, good, seed=0)["gold"] == 0.5


def test_people_win_rate_unblinds_the_shuffled_items():
    items = make_items(["q"] * 6, [f"ppo{i}" for i in range(6)], [f"sft{i}" for i in range(6)], sources=("ppo", "sft"))
    rows = []
    for i, item in enumerate(items):                  # the person prefers PPO on 4, ties 1, skips 1
        choice = "skip" if i == 5 else "tie" if i == 4 else ("a" if item["a_source"] == "ppo" else "b")
        rows.append({**item, "choice": choice})
    assert {it["a_source"] for it in items} == {"ppo", "sft"}       # A is not always the same model
    w = people_win_rate(rows, "ppo", "sft")
    assert (w["people"], w["n"], w["ties"]) == (0.9, 5, 0.2)
    assert people_win_rate(rows, "sft", "ppo")["people"] == pytest.approx(0.1)
    assert people_win_rate([], "ppo", "sft")["n"] == 0
