"""The world's data files: reproducible, disjoint, in CONTRACT's shapes; the labelers' calibration."""
import json
import math
import random

import pytest

from minirlhf.paths import world_dir
from minirlhf.world import labelers
from minirlhf.world.build import build_world, labeler_pairs
from minirlhf.world.prompts import parse_prompt

FILES = ("corpus.jsonl", "corpus_val.jsonl", "demonstrations.jsonl", "demonstrations_val.jsonl",
         "comparison_prompts.jsonl", "ppo_prompts.jsonl", "eval_prompts.jsonl", "world.json")


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    build_world(out, seed=0)
    return out


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_world_command_regenerates_the_shipped_files_byte_for_byte(rebuilt):
    for name in FILES:
        assert (rebuilt / name).read_bytes() == (world_dir() / name).read_bytes(), name


def test_another_seed_gives_another_world(tmp_path, rebuilt):
    from minirlhf.world.build import stratified_prompts
    assert stratified_prompts(random.Random(1))["eval"] != [r["prompt"] for r in _rows(rebuilt / "eval_prompts.jsonl")]


def test_splits_are_disjoint_and_loadable_with_datasets():
    from datasets import load_dataset
    prompt_sets = {}
    for name, column in (("demonstrations", "prompt"), ("demonstrations_val", "prompt"),
                         ("comparison_prompts", "prompt"), ("ppo_prompts", "prompt"), ("eval_prompts", "prompt")):
        ds = load_dataset("json", data_files=str(world_dir() / f"{name}.jsonl"), split="train")
        assert column in ds.column_names and len(ds) > 50
        prompt_sets[name] = set(ds[column])
    names = list(prompt_sets)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not prompt_sets[a] & prompt_sets[b], (a, b)
    corpus_text = "\n".join(r["text"] for r in _rows(world_dir() / "corpus.jsonl"))
    leaked = [p for p in prompt_sets["eval_prompts"] if f"User: {p}\n" in corpus_text]
    assert not leaked, leaked[:3]
    demo = _rows(world_dir() / "demonstrations.jsonl")[0]
    assert set(demo) >= {"prompt", "completion"}
    row = _rows(world_dir() / "eval_prompts.jsonl")[0]
    assert set(row) >= {"prompt_id", "prompt", "category"}


def test_every_category_is_in_the_eval_split():
    from minirlhf.world.prompts import CATEGORY_WEIGHTS
    cats = {r["category"] for r in _rows(world_dir() / "eval_prompts.jsonl")}
    assert cats == set(CATEGORY_WEIGHTS)


def test_demonstrations_are_good_answers():
    from minirlhf.world.gold import judge
    rows = _rows(world_dir() / "demonstrations.jsonl")[:300]
    helpful = sum(judge(r["prompt"], r["completion"]).is_helpful for r in rows) / len(rows)
    assert helpful > 0.97


def test_two_labelers_agree_like_the_papers_labelers_on_fresh_pairs():
    tau = json.loads((world_dir() / "world.json").read_text())["labelers"]["tau"]
    prompts = [r["prompt"] for r in _rows(world_dir() / "comparison_prompts.jsonl")]
    pairs = labeler_pairs(prompts, random.Random(12345), 3000)         # never used for fitting
    a, b = labelers.Labeler(tau, seed=1), labelers.Labeler(tau, seed=2)
    agree = sum(a.compare(ua, ub) == b.compare(ua, ub) for ua, ub in pairs) / len(pairs)
    assert abs(agree - 0.73) <= 0.04, agree
    gold = labelers.gold_agreement(pairs, tau)
    assert 0.73 < gold["all"] < 0.9 and gold["gold_tie_share"] < 0.2


def test_fit_tau_hits_its_target():
    rng = random.Random(0)
    pairs = [(rng.gauss(0, 1), rng.gauss(0, 1)) for _ in range(2000)]
    for target in (0.6, 0.726, 0.9):
        tau = labelers.fit_tau(pairs, target)
        assert abs(labelers.expected_agreement(pairs, tau) - target) < 1e-6
    with pytest.raises(ValueError, match="gold ties"):
        labelers.fit_tau([(0.0, 0.0)] * 10)


def test_ranking_of_k_becomes_all_pairs():
    assert labelers.ranking_to_pairs([2, 0, 1]) == [(2, 0), (2, 1), (0, 1)]
    pairs = labelers.ranking_to_pairs(list(range(9)))
    assert len(pairs) == math.comb(9, 2) and all(w < l for w, l in pairs)


def test_ranking_marginals_match_the_pairwise_model():
    tau, lab = 0.5, labelers.Labeler(0.5, seed=3)
    utilities = [0.3, 0.0, -0.4]
    firsts = [lab.rank(utilities) for _ in range(20000)]
    p01 = sum(r.index(0) < r.index(1) for r in firsts) / len(firsts)
    assert abs(p01 - labelers.preference_probability(0.3, 0.0, tau)) < 0.015


def test_every_shipped_prompt_parses_to_its_category():
    for name in ("comparison_prompts", "ppo_prompts", "eval_prompts"):
        for row in _rows(world_dir() / f"{name}.jsonl"):
            assert parse_prompt(row["prompt"]).category == row["category"]
