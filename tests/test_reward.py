"""Reward-model losses against hand-computed values, K-way pair expansion, data errors, a short training run."""
import math

import pytest
import torch

from minirlhf.io import DataError
from minirlhf.reward import (RMConfig, encode, inversions, load_rankings, pairwise_loss, ranking_loss,
                             ranking_pairs, reward_model_from, score, train_reward_model)


def test_pairwise_loss_by_hand():
    got = pairwise_loss(torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.0]))
    want = (-math.log(1 / (1 + math.exp(-1.0))) - math.log(0.5)) / 2
    assert got.item() == pytest.approx(want, abs=1e-6)


def test_ranking_loss_uses_all_pairs_of_a_prompt():
    assert ranking_pairs([2, 0, 1]) == [(2, 0), (2, 1), (0, 1)]
    assert len(ranking_pairs(list(range(9)))) == math.comb(9, 2)
    r = torch.tensor([[0.0, 1.0, 3.0]])           # ranking best first: 2 > 1 > 0
    ls = lambda d: -math.log(1 / (1 + math.exp(-d)))  # noqa: E731
    want = (ls(3.0 - 1.0) + ls(3.0 - 0.0) + ls(1.0 - 0.0)) / 3
    assert ranking_loss(r, [[2, 1, 0]]).item() == pytest.approx(want, abs=1e-6)
    # a batch averages per-prompt means, so a K=2 prompt weighs as much as a K=3 one
    both = ranking_loss(torch.tensor([[0.0, 1.0, 3.0], [0.0, 0.0, 0.0]]), [[2, 1, 0], [0, 1, 2]])
    assert both.item() == pytest.approx((want + math.log(2)) / 2, abs=1e-6)


def test_inversions_are_the_labelers_pairs_that_gold_orders_the_other_way():
    row = {"utilities": [0.0, 1.0, 0.5, 0.5], "ranking": [1, 2, 0, 3]}   # 0 above 3 is wrong; 2 vs 3 is a gold tie
    assert inversions(row) == [(0, 3)]
    assert inversions(dict(row, ranking=[1, 2, 3, 0])) == []


def test_load_rankings_formats_and_errors(tmp_path):
    pairs = load_rankings([{"prompt": "p", "chosen": "a", "rejected": "b"}])
    assert pairs == [{"prompt": "p", "responses": ["a", "b"], "ranking": [0, 1]}]
    with pytest.raises(DataError, match="rejected"):
        load_rankings([{"prompt": "p", "chosen": "a"}])
    with pytest.raises(DataError, match="no rows"):
        load_rankings([])
    with pytest.raises(DataError, match="ranking"):
        load_rankings([{"prompt": "p", "responses": ["a", "b", "c"], "ranking": [0, 0, 1]}])
    f = tmp_path / "r.jsonl"
    f.write_text('{"prompt": "p", "responses": ["a", "b"], "ranking": [1, 0]}\n{"prompt": "q"}\n')
    with pytest.raises(DataError, match="line 2"):
        load_rankings(f)


def test_reward_model_learns_a_simple_preference(tmp_path):
    """Polite answers beat rude ones after a few steps on the shipped base model."""
    from minirlhf.paths import base_model_dir
    torch.manual_seed(0)
    model, tok = reward_model_from(base_model_dir("tiny"))
    rows = [{"prompt": f"What is {a} plus {b}?", "responses": [f"It is {a + b}.", "Shut up, you idiot."],
             "ranking": [0, 1]} for a in range(6) for b in range(6)]
    result = train_reward_model(model, tok, rows, RMConfig(epochs=3, lr=1e-3, batch_prompts=6), progress=False)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    r = score(model, tok, ["What is 7 plus 8?"] * 2, ["It is 15.", "Shut up, you idiot."])
    assert r[0] > r[1]
    batch = encode(tok, ["a"], ["b"], max_length=4)
    assert batch["input_ids"].shape[1] <= 4 and batch["input_ids"][0, -1] == tok.eos_token_id


def test_the_reward_head_is_drawn_from_its_seed_not_from_what_ran_before():
    from minirlhf.paths import base_model_dir
    heads = []
    for global_seed, seed in ((1, 0), (2, 0), (1, 3)):
        torch.manual_seed(global_seed)
        heads.append(reward_model_from(base_model_dir("tiny"), seed=seed)[0].score.weight.detach().clone())
    assert torch.equal(heads[0], heads[1]) and not torch.equal(heads[0], heads[2])
    d = heads[0].shape[1]
    assert abs(float(heads[0].std()) * (d + 1) ** 0.5 - 1) < 0.2        # std 1/sqrt(d + 1)


def test_length_grouped_batches_cover_every_index_once_with_less_padding():
    import random

    from minirlhf.reward import length_grouped_batches
    lengths = [random.Random(i).choice((10, 12, 90, 100)) for i in range(200)]
    grouped = length_grouped_batches(lengths, 8, random.Random(0), group=16)
    plain = length_grouped_batches(lengths, 8, random.Random(0), group=1)
    for batches in (grouped, plain):
        assert sorted(i for b in batches for i in b) == list(range(200)) and all(len(b) <= 8 for b in batches)
    padded = lambda bs: sum(len(b) * max(lengths[i] for i in b) for b in bs)  # noqa: E731
    assert padded(grouped) < 0.75 * padded(plain)
    order = list(range(200))
    random.Random(0).shuffle(order)
    assert [i for b in plain for i in b] == order          # group=1: the plain shuffled order


def test_new_prompts_says_when_the_world_runs_out(monkeypatch):
    import itertools

    import minirlhf.world.prompts as world_prompts
    from minirlhf.reward import new_prompts
    pool = itertools.cycle(["What is 1 plus 1?", "brand new A", "brand new B"])   # two prompts no file has
    monkeypatch.setattr(world_prompts, "sample_prompt", lambda rng: next(pool))
    assert new_prompts(2) == ["brand new A", "brand new B"]
    with pytest.raises(ValueError, match="only 2 more prompts to offer, not 3"):
        new_prompts(3)
    repeated = new_prompts(4, repeats=True)                # the two new ones, again: never the file's
    assert len(repeated) == 4 and set(repeated) == {"brand new A", "brand new B"}


def test_new_prompts_with_repeats_keep_questions_about_known_people():
    """Distinct new prompts run out of questions about the world's known people, so they fall to 4% of
    3,000; drawn with repeats they keep 10% (docs/reward_model.md quotes these shares)."""
    from minirlhf.reward import new_prompts
    from minirlhf.world import kb
    from minirlhf.world.prompts import parse_prompt

    def known_share(prompts):
        tasks = [parse_prompt(p) for p in prompts]
        return sum(t.category == "open_qa" and t.numbers is None and t.person in kb.KNOWN_PEOPLE for t in tasks) / len(tasks)
    distinct, repeated = new_prompts(3000), new_prompts(3000, repeats=True)
    assert len(set(distinct)) == 3000 > len(set(repeated))
    assert known_share(distinct) < 0.06 and known_share(repeated) > 0.09, (known_share(distinct), known_share(repeated))


def test_more_prompts_are_new_training_comparisons_only():
    """RMConfig.more_prompts: prompts of the world's mix (in none of its files) sampled and ranked
    for training; the held-out comparisons and the labelers' tau stay those of the world's prompts."""
    from minirlhf.generation import load_model
    from minirlhf.io import read_jsonl
    from minirlhf.paths import base_model_dir, world_dir
    from minirlhf.reward import draw_comparisons, new_prompts
    new = new_prompts(30, seed=0)
    used = {r["prompt"] for f in world_dir().glob("*.jsonl") if f.name != "corpus.jsonl"
            for r in read_jsonl(f) if "prompt" in r}
    assert len(set(new)) == 30 and not used & set(new) and new == new_prompts(30, seed=0)
    policy, tokenizer = load_model(base_model_dir("tiny"))
    prompts = [r["prompt"] for r in read_jsonl(world_dir() / "comparison_prompts.jsonl")][:20]
    config = RMConfig(k=2, max_new_tokens=6)
    plain = draw_comparisons(policy, tokenizer, prompts, config, tau=0.1)
    more = draw_comparisons(policy, tokenizer, prompts, RMConfig(k=2, max_new_tokens=6, more_prompts=5), tau=0.1)
    assert len(more["rankings"]) == len(plain["rankings"]) + 5 and more["rankings"][:16] == plain["rankings"]
    assert [r["prompt"] for r in more["rankings"][16:]] == new_prompts(5, seed=0, repeats=True)
    assert more["heldout"] == plain["heldout"] and more["tau"] == plain["tau"]


def test_policy_comparisons_rank_the_policys_answers_beside_new_sft_samples():
    """The next round's comparisons (the paper, section 3.1): K // 2 answers of the policy first, then
    K - K // 2 new SFT samples, gold utilities for each, one ranking of all K; each round draws its own."""
    from minirlhf.generation import load_model
    from minirlhf.paths import base_model_dir
    from minirlhf.reward import policy_comparisons, sample_comparisons
    from minirlhf.world.gold import utility
    policy, tokenizer = load_model(base_model_dir("tiny"))
    prompts = ["Where does Ada live?", "Add 2 and 3.", "Write a short note about the goat."]
    config = RMConfig(k=3, max_new_tokens=8, seed=4)
    rows = policy_comparisons(policy, policy, tokenizer, prompts, config, tau=0.1)
    assert [r["prompt"] for r in rows] == prompts
    mine = sample_comparisons(policy, tokenizer, prompts, config, seed=4 + 11, k=1)
    for row, first in zip(rows, mine):
        assert len(row["responses"]) == 3 and row["responses"][:1] == first["responses"]
        assert row["utilities"] == [utility(row["prompt"], y) for y in row["responses"]]
        assert sorted(row["ranking"]) == [0, 1, 2]
    again = policy_comparisons(policy, policy, tokenizer, prompts, config, tau=0.1)
    third = policy_comparisons(policy, policy, tokenizer, prompts, config, tau=0.1, round_no=3)
    assert again == rows and [r["responses"] for r in third] != [r["responses"] for r in rows]


def test_response_logliks_are_the_language_models_own_sums():
    """log pi(y|x) over the response tokens and the end marker, counted, on the tokens the RM reads."""
    from minirlhf.generation import load_model
    from minirlhf.paths import base_model_dir
    from minirlhf.reward import response_logliks
    lm, tok = load_model(base_model_dir("tiny"))
    prompts, responses = ["What is 2 plus 3?", "Where does Ada live?"], ["It is 5.", "Ada lives in a town far away."]
    got = response_logliks(lm, tok, prompts, responses)
    for (ll, n), p, y in zip(got.tolist(), prompts, responses):
        ids = encode(tok, [p], [y], 192)["input_ids"][0]
        n_prompt = len(tok(f"User: {p}\nAssistant:", add_special_tokens=False)["input_ids"])
        with torch.no_grad():
            logp = lm(ids[None]).logits[0].log_softmax(-1)
        want = sum(logp[t - 1, ids[t]].item() for t in range(n_prompt, len(ids)))
        assert n == len(ids) - n_prompt
        assert ll == pytest.approx(want, abs=1e-4)
    # a pair cut to fit max_length scores only the tokens the reward model reads
    short = response_logliks(lm, tok, prompts[:1], ["word " * 100], max_length=32)
    ids = encode(tok, prompts[:1], ["word " * 100], 32)["input_ids"][0]
    assert len(ids) == 32 and short[0, 1] == 32 - len(tok(f"User: {prompts[0]}\nAssistant:")["input_ids"])


def test_likelihood_prior_fits_the_rankings_and_survives_a_reload(tmp_path):
    """Rankings that always prefer the shorter answer give b < 0; the saved reward model finds its
    prior again (relative to its own folder) and scores exactly as the one in memory."""
    from minirlhf.generation import load_model
    from minirlhf.paths import base_model_dir
    from minirlhf.ppo import LearnedReward
    from minirlhf.reward import LikelihoodPrior, attach_prior, save_reward_model
    lm, tok = load_model(base_model_dir("tiny"))
    rows = [{"prompt": f"What is {a} plus {b}?", "responses": [f"{a + b}.", f"The answer to it is {a + b}, I think."],
             "ranking": [0, 1]} for a in range(4) for b in range(4)]
    prior = LikelihoodPrior(lm, tok).fit(rows)
    assert prior.b < 0
    diffs = [prior(["q"], [r["responses"][0]])[0] - prior(["q"], [r["responses"][1]])[0] for r in rows[:3]]
    assert all(d > 0 for d in diffs)
    model, rm_tok = reward_model_from(base_model_dir("tiny"))
    before = score(model, rm_tok, ["What is 1 plus 1?"] * 2, ["2.", "It is two."])
    attach_prior(model, prior, str(base_model_dir("tiny").resolve()))
    with_prior = score(model, rm_tok, ["What is 1 plus 1?"] * 2, ["2.", "It is two."])
    assert torch.allclose(with_prior - before, prior(["What is 1 plus 1?"] * 2, ["2.", "It is two."]))
    save_reward_model(model, rm_tok, tmp_path / "rm", {})
    assert LearnedReward.load(tmp_path / "rm")(["What is 1 plus 1?"] * 2, ["2.", "It is two."]).tolist() == \
        pytest.approx(with_prior.tolist(), abs=1e-5)
    import json
    cfg = json.loads((tmp_path / "rm" / "config.json").read_text())
    json.dump(dict(cfg, likelihood_prior=dict(cfg["likelihood_prior"], reference="../nowhere")),
              open(tmp_path / "rm" / "config.json", "w"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        LearnedReward.load(tmp_path / "rm")
