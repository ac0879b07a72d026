"""PPO's pure functions against hand-computed values."""
import math

import pytest
import torch

from minirlhf.ppo import (AdaptiveKL, PPOConfig, gae, kl_per_token, masked_mean, policy_loss, response_mask,
                          token_rewards, value_loss, whiten)


def test_gae_and_returns_by_hand():
    # one answer of 3 tokens, then a pad; gamma 0.9, lam 0.5
    r = torch.tensor([[0.0, 0.5, 1.0, 7.0]])
    v = torch.tensor([[1.0, 2.0, 3.0, 9.0]])
    m = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    adv, ret = gae(r, v, m, gamma=0.9, lam=0.5)
    d2 = 1.0 + 0.9 * 0 - 3.0                 # V past the last token is 0
    d1 = 0.5 + 0.9 * 3.0 - 2.0
    d0 = 0.0 + 0.9 * 2.0 - 1.0
    a2 = d2
    a1 = d1 + 0.45 * a2
    a0 = d0 + 0.45 * a1
    assert adv[0].tolist() == pytest.approx([a0, a1, a2, 0.0])
    assert ret[0].tolist() == pytest.approx([a0 + 1, a1 + 2, a2 + 3, 0.0])


def test_gae_with_gamma_lam_one_is_reward_to_go_minus_value():
    r = torch.tensor([[0.1, -0.2, 2.0]])
    v = torch.tensor([[0.5, 0.4, 0.3]])
    adv, ret = gae(r, v, torch.ones(1, 3), gamma=1.0, lam=1.0)
    assert ret[0].tolist() == pytest.approx([1.9, 1.8, 2.0])
    assert adv[0].tolist() == pytest.approx([1.4, 1.4, 1.7])


def test_kl_estimators_by_hand():
    logp, ref = torch.tensor([math.log(0.5), math.log(0.2)]), torch.tensor([math.log(0.25), math.log(0.4)])
    assert kl_per_token(logp, ref, "k1").tolist() == pytest.approx([math.log(2), math.log(0.5)])
    # k3 = (rho - 1) - log rho with rho = pi_ref / pi
    assert kl_per_token(logp, ref, "k3").tolist() == pytest.approx([(0.5 - 1) - math.log(0.5), (2 - 1) - math.log(2)])
    assert (kl_per_token(logp, ref, "k3") >= 0).all()
    with pytest.raises(ValueError, match="k2"):
        kl_per_token(logp, ref, "k2")


def test_token_rewards_put_the_score_on_the_last_token():
    kl = torch.tensor([[0.2, 0.4, 0.6], [1.0, 1.0, 1.0]])
    m = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    r = token_rewards(torch.tensor([3.0, -1.0]), kl, m, beta=0.5)
    assert r.flatten().tolist() == pytest.approx([-0.1, -0.2 + 3.0, 0.0, -0.5, -0.5, -0.5 - 1.0])


def test_clipped_policy_loss_by_hand():
    old = torch.zeros(1, 3)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))    # ratios 1.5, 0.5, 1.1
    adv = torch.tensor([[1.0, 1.0, -2.0]])
    loss, stats = policy_loss(logp, old, adv, torch.ones(1, 3), cliprange=0.2)
    # per token max(-A r, -A clip(r)): max(-1.5, -1.2) = -1.2; max(-0.5, -0.8) = -0.5; max(2.2, 2.2) = 2.2
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 2.2) / 3)
    assert stats["clipfrac"].item() == pytest.approx(1 / 3)
    assert stats["approxkl"].item() == pytest.approx(0.5 * sum(math.log(x) ** 2 for x in (1.5, 0.5, 1.1)) / 3)


def test_clipped_value_loss_by_hand():
    v, old, ret = torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.1]]), torch.tensor([[3.0, 0.0]])
    loss, stats = value_loss(v, old, ret, torch.ones(1, 2), cliprange_value=0.5)
    # token 0: unclipped (2-3)^2 = 1, clipped (1.5-3)^2 = 2.25 -> 2.25 (clipped)
    # token 1: V - V_old = -0.1 is inside the clip range, so both are (0-0)^2 = 0
    assert loss.item() == pytest.approx(0.5 * (2.25 + 0.0) / 2)
    assert stats["clipfrac"].item() == pytest.approx(0.5)


def test_eos_truncation_and_missing_eos():
    eos, pad = 0, 1
    ids = torch.tensor([[5, 6, eos, pad], [5, 6, 7, 8], [eos, pad, pad, pad]])
    mask, has_eos = response_mask(ids, eos)
    assert mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert has_eos.tolist() == [True, False, True]


def test_whiten_and_masked_mean():
    x, m = torch.tensor([1.0, 2.0, 3.0, 100.0]), torch.tensor([1.0, 1.0, 1.0, 0.0])
    assert masked_mean(x, m).item() == pytest.approx(2.0)
    w = whiten(x, m)
    assert masked_mean(w, m).item() == pytest.approx(0.0, abs=1e-6)
    assert masked_mean(w ** 2, m).item() == pytest.approx(1.0, abs=1e-4)
    assert w[3].item() == 0.0


def test_adaptive_kl_moves_beta_toward_the_target():
    ctl = AdaptiveKL(0.1, target=6.0, horizon=100)
    assert ctl.update(12.0, 10) == pytest.approx(0.1 * (1 + 0.2 * 0.1))   # error clipped at 0.2
    ctl = AdaptiveKL(0.1, target=6.0, horizon=100)
    assert ctl.update(3.0, 10) == pytest.approx(0.1 * (1 - 0.2 * 0.1))


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="kl_estimator"):
        PPOConfig(kl_estimator="k2")
    with pytest.raises(ValueError, match="mini_batch_size"):
        PPOConfig(batch_size=10, mini_batch_size=4)


def test_masked_positions_never_reach_the_loss_or_its_gradient():
    """An inf or NaN past the eos (mask 0) leaves the losses and their gradients finite."""
    from minirlhf.ppo import gae, policy_loss, token_rewards, value_loss, whiten
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    logp = torch.tensor([[-1.0, -2.0, 200.0]], requires_grad=True)     # exp(200 - old) overflows
    old = torch.tensor([[-1.1, -1.9, -float("inf")]])
    adv = whiten(torch.tensor([[0.5, -0.5, float("nan")]]), mask)
    pg, _ = policy_loss(logp, old, adv, mask, 0.2)
    pg.backward()
    assert torch.isfinite(pg) and torch.isfinite(logp.grad).all() and logp.grad[0, 2] == 0
    rewards = token_rewards(torch.tensor([1.0]), torch.tensor([[0.1, 0.2, float("inf")]]), mask, 0.05)
    a, r = gae(rewards, torch.tensor([[0.0, 0.0, float("nan")]]), mask, 1.0, 0.95)
    assert torch.isfinite(a).all() and torch.isfinite(r).all()
    vf, _ = value_loss(torch.tensor([[0.1, 0.2, float("nan")]]), torch.zeros(1, 3), r, mask, 0.2)
    assert torch.isfinite(vf)


def test_a_huge_ratio_gives_finite_gradients():
    """A token whose probability rose by e^100 (log rho = 100) with A > 0: the clipped branch wins,
    the loss is finite, and so is its gradient (exp(100) is inf in fp32; 0 * inf would be NaN)."""
    logp = torch.tensor([[0.0, -1.0]], requires_grad=True)
    old = torch.tensor([[-100.0, -1.0]])
    loss, _ = policy_loss(logp, old, torch.tensor([[1.0, -1.0]]), torch.ones(1, 2), 0.2)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logp.grad).all()
    assert logp.grad[0, 0] == 0          # clipped: no gradient, as PPO intends


def test_backward_step_skips_a_non_finite_gradient():
    """With skip_non_finite, a NaN gradient leaves every weight as it was (the global clip would
    spread it to all of them) and the step reports False."""
    from minirlhf.models import backward_step, grad_scaler
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([w], lr=0.1)
    scaler = grad_scaler("cpu", None)
    loss = (w * torch.tensor([1.0, float("nan"), 1.0])).sum()
    assert backward_step(loss, opt, [w], 1.0, scaler, skip_non_finite=True) is False
    assert torch.equal(w.detach(), torch.ones(3))
    assert backward_step((w * 2).sum(), opt, [w], 1.0, scaler, skip_non_finite=True) is True
    assert not torch.equal(w.detach(), torch.ones(3))


def test_backward_step_on_device_skips_without_waiting_and_otherwise_steps_as_backward_step():
    """A fused AdamW skips a NaN-gradient step on the device (``found_inf``): weights, moments and
    step count stay as they were, and the returned flag says so. Finite steps equal ``backward_step``'s."""
    from minirlhf.models import backward_step, backward_step_on_device, grad_scaler
    scaler = grad_scaler("cpu", None)
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.AdamW([w], lr=0.1, fused=True)
    assert bool(backward_step_on_device((w * 2).sum(), opt, [w], 1.0, scaler))
    state = {k: v.clone() for k, v in opt.state[w].items()}
    weights = w.detach().clone()
    stepped = backward_step_on_device((w * torch.tensor([1.0, float("nan"), 1.0])).sum(), opt, [w], 1.0, scaler)
    assert stepped.dim() == 0 and not bool(stepped)
    assert torch.equal(w.detach(), weights) and all(torch.equal(state[k], opt.state[w][k]) for k in state)
    assert not hasattr(opt, "found_inf")
    torch.manual_seed(0)
    a, b = torch.nn.Linear(4, 2), torch.nn.Linear(4, 2)
    b.load_state_dict(a.state_dict())
    opt_a, opt_b = (torch.optim.AdamW(m.parameters(), lr=0.1, fused=True) for m in (a, b))
    for _ in range(4):
        x = torch.randn(8, 4)
        backward_step(a(x).square().sum(), opt_a, list(a.parameters()), 0.5, scaler, skip_non_finite=True)
        backward_step_on_device(b(x).square().sum(), opt_b, list(b.parameters()), 0.5, scaler)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
