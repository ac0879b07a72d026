"""Write the world's data files (``minirlhf world``), byte for byte the same for a seed.

Files (JSONL, CONTRACT shapes, loadable with ``datasets.load_dataset("json", ...)``):

=============================  ==========================================================
``corpus.jsonl``               ``text``: the "internet" the base model is pretrained on
``corpus_val.jsonl``           ``text``: held-out documents for the corpus loss
``demonstrations.jsonl``       ``prompt``, ``completion``: labeler demonstrations (SFT)
``demonstrations_val.jsonl``   the same, held out for the SFT validation loss
``comparison_prompts.jsonl``   ``prompt_id``, ``prompt``, ``category``: for RM rankings
``ppo_prompts.jsonl``          the same, for PPO rollouts
``eval_prompts.jsonl``         the same, held out for evaluation
``world.json``                 seed, counts, the fitted labeler ``tau`` and agreements
=============================  ==========================================================

The prompt splits are disjoint by text, and stratified by category so each split has
the same task mix.
"""
from __future__ import annotations

import random
from pathlib import Path

from .. import io
from . import format_prompt, kb, labelers
from .gold import utility
from .prompts import CATEGORY_WEIGHTS, parse_prompt, sample_prompt
from .responses import FACT_PHRASES, FILLER, INTERNET_MIX, SFT_LIKE_MIX, sample_response, write_response

# Unique prompts per split. Eval holds 600, the n of CONTRACT's win rates.
SPLIT_SIZES = {"corpus": 1000, "demonstrations": 1200, "comparison": 800, "ppo": 800, "eval": 600}
N_QA_DOCS = 14000          # question/answer documents in the corpus (prompts reused)
BIO_REPEATS = 40           # each known person's biography, in this many phrasings
N_FILLER_DOCS = 600        # plain text, so the model learns the language beyond Q/A
VAL_FRACTION = 0.05        # share of the corpus and demonstrations held out
TAU_PAIRS = 4000           # (response, response) pairs for fitting the labelers' tau
EXTRA_COMPARISON = 1600    # more comparison prompts beyond the stratified ones: the paper's RM
                           # set (33k prompts) is its largest, ~2.5x the SFT set (13k)


def stratified_prompts(rng: random.Random) -> dict[str, list[str]]:
    """Disjoint prompt splits with the same category mix each (as far as a category has prompts)."""
    total = sum(SPLIT_SIZES.values())
    splits: dict[str, list[str]] = {s: [] for s in SPLIT_SIZES}
    for category, weight in CATEGORY_WEIGHTS.items():
        need = round(total * weight)
        seen: dict[str, None] = {}
        for _ in range(need * 30):
            seen.setdefault(sample_prompt(rng, category))
            if len(seen) >= need:
                break
        pool = list(seen)
        rng.shuffle(pool)
        start = 0
        for split, size in SPLIT_SIZES.items():
            n = round(len(pool) * size / total)
            splits[split] += pool[start:start + n]
            start += n
    for split in splits.values():
        rng.shuffle(split)
    return splits


def _bio(person: str, rng: random.Random) -> str:
    attributes = list(kb.ATTRIBUTES)
    rng.shuffle(attributes)
    named = {a: [t for t in FACT_PHRASES[a] if "{p}" in t] for a in attributes}
    return " ".join(rng.choice(named[a]).format(p=person, v=kb.FACTS[person][a]) for a in attributes)


def corpus_documents(prompts: list[str], rng: random.Random, n_qa: int) -> list[str]:
    """The internet: biographies (true facts), mixed-quality Q/A threads and plain text."""
    docs = [_bio(p, rng) for p in kb.KNOWN_PEOPLE for _ in range(BIO_REPEATS)]
    for _ in range(n_qa):
        prompt = rng.choice(prompts)
        _, response = sample_response(parse_prompt(prompt), rng, INTERNET_MIX)
        docs.append(f"{format_prompt(prompt)} {response}")
    docs += [" ".join(rng.sample(FILLER, 3)) for _ in range(N_FILLER_DOCS)]
    rng.shuffle(docs)
    return docs


def labeler_pairs(prompts: list[str], rng: random.Random, n: int) -> list[tuple[float, float]]:
    """Gold utilities of two responses sampled for the same prompt, like an RM's pairs."""
    pairs = []
    for _ in range(n):
        prompt = rng.choice(prompts)
        task = parse_prompt(prompt)
        a = sample_response(task, rng, SFT_LIKE_MIX)[1]
        b = sample_response(task, rng, SFT_LIKE_MIX)[1]
        pairs.append((utility(prompt, a), utility(prompt, b)))
    return pairs


def extra_prompts(splits: dict[str, list[str]], rng: random.Random, n: int, split: str) -> list[str]:
    """``splits[split]`` plus ``n`` new prompts found in no split, shuffled together.

    The new prompts follow the world's category mix as far as categories have unused prompts
    left (most are fact questions and passages, where the world's prompt space is largest).
    """
    used = {p for prompts in splits.values() for p in prompts}
    new: dict[str, None] = {}
    for _ in range(n * 50):
        prompt = sample_prompt(rng)
        if prompt not in used:
            new.setdefault(prompt)
            if len(new) >= n:
                break
    out = splits[split] + list(new)
    rng.shuffle(out)
    return out


def _prompt_rows(split: str, prompts: list[str]) -> list[dict]:
    return [{"prompt_id": f"{split}-{i:05d}", "prompt": p, "category": parse_prompt(p).category}
            for i, p in enumerate(prompts)]


def build_world(out_dir: str | Path | None = None, seed: int = 0) -> dict:
    """Generate every data file of the world under ``out_dir``; returns the ``world.json`` dict."""
    from ..paths import world_dir
    out = Path(out_dir) if out_dir is not None else world_dir()
    rng = random.Random(seed)
    splits = stratified_prompts(rng)

    docs = corpus_documents(splits["corpus"], random.Random(seed + 1), N_QA_DOCS)
    n_val = int(len(docs) * VAL_FRACTION)
    io.write_jsonl_atomic(out / "corpus.jsonl", [{"text": d} for d in docs[n_val:]])
    io.write_jsonl_atomic(out / "corpus_val.jsonl", [{"text": d} for d in docs[:n_val]])

    demo_rng = random.Random(seed + 2)
    demos = [{"prompt": p, "completion": write_response(parse_prompt(p), "good", demo_rng)}
             for p in splits["demonstrations"]]
    n_val = int(len(demos) * VAL_FRACTION * 2)
    io.write_jsonl_atomic(out / "demonstrations.jsonl", demos[n_val:])
    io.write_jsonl_atomic(out / "demonstrations_val.jsonl", demos[:n_val])
    fit_pairs = labeler_pairs(splits["comparison"], random.Random(seed + 3), TAU_PAIRS)
    tau = round(labelers.fit_tau(fit_pairs), 6)
    fresh = labeler_pairs(splits["comparison"], random.Random(seed + 4), TAU_PAIRS)

    splits["comparison"] = extra_prompts(splits, random.Random(seed + 5), EXTRA_COMPARISON, "comparison")
    for split in ("comparison", "ppo", "eval"):
        io.write_jsonl_atomic(out / f"{split}_prompts.jsonl", _prompt_rows(split, splits[split]))
    meta = {
        "seed": seed,
        "files": {s: len(v) for s, v in splits.items()},
        "corpus_documents": len(docs),
        "demonstrations": len(demos),
        "labelers": {
            "tau": tau,
            "fitted_on": f"{TAU_PAIRS} pairs of two SFT-like responses to the same comparison prompt",
            "target_agreement": labelers.PAPER_AGREEMENT,
            "labeler_labeler_agreement_fresh": round(labelers.expected_agreement(fresh, tau), 4),
            "labeler_gold_agreement_fresh": {k: round(v, 4) for k, v in labelers.gold_agreement(fresh, tau).items()},
        },
        "facts": kb.FACTS,
    }
    io.write_json_atomic(out / "world.json", meta)
    return meta
