"""The dashboard's warnings fire on the failure modes users report, and stay quiet otherwise."""
import pytest

from minirlhf.dashboard import Dashboard, Thresholds, check


def _h(step, kl=1.0, entropy=10.0, scores=0.0, gold=0.0):
    return {"step": step, "objective/kl": kl, "objective/entropy": entropy, "objective/scores": scores,
            "objective/gold": gold, "objective/rlhf_reward": scores, "val/response_length": 9.0}


def test_quiet_when_training_is_healthy():
    history = [_h(i, kl=0.1 * i, scores=0.01 * i, gold=0.01 * i) for i in range(1, 20)]
    assert all(check(history[:i]) == [] for i in range(1, 20))


def test_negative_and_exploding_kl():
    assert "negative KL" in check([_h(1, kl=-2.0)])[0]
    assert "exploding" in check([_h(1, kl=100.0)])[0]


def test_entropy_collapse():
    assert "entropy collapsed" in check([_h(1, entropy=10.0), _h(2, entropy=1.0)])[0]


def test_rm_and_gold_moving_apart_is_reward_hacking():
    t = Thresholds(window=4)
    history = [_h(i, scores=0.1 * i, gold=-0.1 * i) for i in range(1, 9)]
    assert any("reward hacking" in w for w in check(history, t))
    assert check(history[:7], t) == []                 # two whole windows are needed
    together = [_h(i, scores=0.1 * i, gold=0.1 * i) for i in range(1, 9)]
    assert check(together, t) == []


def test_noisy_gold_without_a_trend_is_not_reward_hacking():
    """One batch's gold mean jumps by 0.3 from iteration to iteration; a single dip is noise, a steady fall is not."""
    t = Thresholds(window=4)
    noisy = [_h(i, scores=0.1 * i, gold=0.3 * (i % 2)) for i in range(1, 9)]
    noisy[-1]["objective/gold"] = -0.3                 # one bad batch at the end
    assert check(noisy, t) == []
    falling = [_h(i, scores=0.1 * i, gold=0.3 * (i % 2) - (0.5 if i > 4 else 0)) for i in range(1, 9)]
    assert any("reward hacking" in w for w in check(falling, t))


def test_dashboard_collects_warnings_and_draws_offline():
    dash = Dashboard(live=False)
    for i in range(1, 4):
        dash(_h(i, kl=-3.0))
    assert len(dash.warnings) == 1              # the same warning is not repeated every iteration
    fig = dash.figure()
    assert "negative KL" in fig._suptitle.get_text()
    assert len([ax for ax in fig.axes if ax.lines]) >= 4


def test_chat_box_answers_side_by_side_with_gold_utilities():
    from minirlhf.dashboard import ChatBox
    from minirlhf.generation import load_model
    from minirlhf.paths import base_model_dir
    base = load_model(base_model_dir("tiny"))
    box = ChatBox({"base": base, "base again": base})
    answers = box.answer("What is 2 plus 3?")
    assert list(answers) == ["base", "base again"] and answers["base"] == answers["base again"]   # same seed
    page = box.html("What is 2 plus 3?", answers)
    assert page.count("U = ") == 2 and "What is 2 plus 3?" in page
    from minirlhf.world.gold import utility
    assert page.count(f"U = {utility('What is 2 plus 3?', answers['base']):+.2f}") == 2    # the gold utility
    assert box.widget is box.widget                                   # built once
    with pytest.raises(ValueError, match="empty"):
        box.answer("  ")
