"""The dashboard's warnings fire on the failure modes users report, and stay quiet otherwise."""
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
    history = [_h(i, scores=0.1 * i, gold=-0.1 * i) for i in range(1, 7)]
    assert any("reward hacking" in w for w in check(history, t))
    together = [_h(i, scores=0.1 * i, gold=0.1 * i) for i in range(1, 7)]
    assert check(together, t) == []


def test_dashboard_collects_warnings_and_draws_offline():
    dash = Dashboard(live=False)
    for i in range(1, 4):
        dash(_h(i, kl=-3.0))
    assert len(dash.warnings) == 1              # the same warning is not repeated every iteration
    fig = dash.figure()
    assert "negative KL" in fig._suptitle.get_text()
    assert len([ax for ax in fig.axes if ax.lines]) >= 4
