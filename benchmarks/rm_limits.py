"""What limits the reward model: its held-out accuracy against gold as its training data changes.

    python benchmarks/rm_limits.py --save data/results/rm_limits_cpu.json   # ~8 minutes on 2 CPU cores
    python benchmarks/rm_limits.py --k9                                     # also K = 9 (~5 minutes more)
    python benchmarks/rm_limits.py --show data/results/rm_limits_cpu.json   # a saved result as markdown
    python benchmarks/rm_limits.py --no-defaults --passage 3000 --reading 4000 \
        --save data/results/rm_capacity_cpu.json                            # is it data or the model? (~25 min)
    python benchmarks/rm_limits.py --no-defaults --more 5580 20000 --loglik \
        --save data/results/rm_more_cpu.json                                # more labeled prompts (~30 min)
    python benchmarks/rm_limits.py --no-defaults --word-cost 0.003 0.02 \
        --save data/results/rm_word_cost_cpu.json                           # gold's per-word cost (~3 min)

The reward-model stage as `minirlhf run` does it (`RMConfig` defaults; SFT from the shipped tiny
base model, or `--sft PATH`): K = 4 samples of the SFT policy per comparison prompt, ranked by
simulated labelers calibrated on these very pairs; held-out comparisons drawn the same way on
prompts never trained on. One reward model is trained per variant, all on the same samples:

- `labelers`: the stage's own rankings, every training prompt;
- `labelers_half`, `labelers_quarter`: the first half and quarter of those prompts;
- `gold`: the same responses ranked by the noise-free gold utility instead of labelers;
- `k9` (`--k9`): nine samples per prompt instead of four (new samples, held-out too);
- `gold_passage` (`--passage N`): gold rankings, plus N more passage-task prompts (closed QA,
  summaries, extraction in equal shares, none of them held out) sampled and gold-ranked the same way;
- `labelers_more_N` (`--more N [N ...]`): the labelers' rankings plus N more prompts of the world's mix,
  found in none of its prompt files, sampled and ranked by labelers the same way, exactly as
  `minirlhf run --more-comparisons N` does (`RMConfig.more_prompts`; the paper had ~33k prompts);
- `one_labeler` (`--labeler`): no reward model: one simulated labeler's expected agreement with gold
  on the same held-out pairs, sigmoid(|U(a) - U(b)| / tau) per pair (its `accuracy_labelers`: two labelers'
  expected agreement), to see where the labels themselves are a coin toss;
- `sft_loglik` (`--loglik`): no reward model: each response scored by the SFT model's own summed
  log-likelihood, to see what the language model knows that the reward model does not pick up;
- `word_cost_C` (`--word-cost C [C ...]`): the same samples in a world whose gold costs C a word
  (`gold.PER_WORD_COST`; 0.02 since commit 3400b9a, 0.003 before): utilities scored again, the labelers'
  tau calibrated again on them, every row ranked again, a reward model trained on those rankings and
  measured against that gold; `one_labeler_word_cost_C`: one labeler of that world, as `one_labeler`.
  Their pairs are grouped by their gaps at 0.003 a word in every variant, so that near ties are the
  same pairs (the same substance, a few words apart) whatever C;
- `reading_gold`, `reading_labelers` (`--reading N`): the reward model initialised from a
  different SFT model: the same SFT recipe on a base model pretrained on the corpus plus N
  reading exercises (a passage, then a question about it and its answer, a one-line summary or
  the list of its items, written out as web worksheets, not as assistant answers), trained on
  the same gold or labeler rankings. The two SFT models' gold rates by category are reported
  under `sft_rates`.

Each reports accuracy against gold on held-out pairs that gold does not tie, split into close
pairs (|U(a) - U(b)| <= 0.3: a few words longer or shorter, a little politeness) and content
pairs (a wrong fact, a missed item, a refusal), the close pairs into near ties (|U(a) - U(b)| <= 0.02:
the same substance, the shorter answer better by gold's 0.003 a word) and the rest, and the content
pairs into passage tasks (closed QA, summaries, extraction: the answer must be read from the prompt)
and the rest.
Prints one JSON line; `--save` also writes it with the command, commit and device.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from itertools import combinations
from pathlib import Path

import torch

CONTENT = 0.3                                          # |U(a) - U(b)| above this: a content pair
NEAR_TIE = 0.02                                        # at most this: the same substance, a few words apart
PASSAGE_TASKS = ("closed_qa", "summarization", "extraction")
SPLIT_WORD_COST = 0.003                                # --word-cost variants group pairs by their gaps at gold's
                                                       # cost before commit 3400b9a: near ties = the same substance


def gold_ranked(rows: list[dict]) -> list[dict]:
    """Rows ranked best first by the noise-free gold utility."""
    return [dict(r, ranking=sorted(range(len(r["utilities"])), key=lambda i: -r["utilities"][i])) for r in rows]


def breakdown(rows: list[dict], r_all: list[float] | None = None, tau: float | None = None,
              split: list[dict] | None = None) -> dict:
    """Accuracy against gold on non-tied held-out pairs: close, content, content on passage tasks, other
    content; ``r_all``: the RM's ``heldout_scores`` of ``rows``. Given ``tau`` instead: the expected
    agreement of one labeler of that tau with gold, sigmoid(|U(a) - U(b)| / tau) per pair. ``split``: the
    same rows with other utilities, by whose gaps the pairs are put into groups (default: ``rows``)."""
    from minirlhf.evaluate import outcome
    from minirlhf.world.labelers import preference_probability
    from minirlhf.world.prompts import parse_prompt
    hits = {"close": [], "close_near_tie": [], "close_other": [], "content": [], "content_passage": [],
            "content_other": []}
    start = 0
    for row, by in zip(rows, split or rows):
        k, u, g = len(row["responses"]), row["utilities"], by["utilities"]
        r, start = (r_all[start:start + k] if r_all is not None else None), start + k
        passage = parse_prompt(row["prompt"]).category in PASSAGE_TASKS
        for a, b in combinations(range(k), 2):
            if u[a] == u[b]:
                continue
            hi, lo = (a, b) if u[a] > u[b] else (b, a)
            hit = outcome(r[hi], r[lo]) if r is not None else preference_probability(u[hi], u[lo], tau)
            if abs(g[a] - g[b]) <= CONTENT:
                hits["close"].append(hit)
                hits["close_near_tie" if abs(g[a] - g[b]) <= NEAR_TIE else "close_other"].append(hit)
            else:
                hits["content"].append(hit)
                hits["content_passage" if passage else "content_other"].append(hit)
    out = {}
    for name, xs in hits.items():
        out[f"accuracy_gold_{name}"] = round(sum(xs) / len(xs), 4) if xs else None
        out[f"pairs_{name}"] = len(xs)
    return out


def reading_document(rng) -> str:
    """A reading exercise of the kind a web corpus holds: a passage, then its answer written out."""
    from minirlhf.world.prompts import FACT_TEMPLATES, parse_prompt, sample_prompt
    from minirlhf.world.responses import _clause, _fact
    kind = rng.choice(("question", "question", "summary", "list"))
    prompt = sample_prompt(rng, {"question": "closed_qa", "summary": "summarization", "list": "extraction"}[kind])
    task, text = parse_prompt(prompt), prompt.split('"')[1]
    if kind == "list":
        return f"{text} The {task.kind} here: {', '.join(task.items[:-1])} and {task.items[-1]}."
    facts = task.passage[task.person]
    if kind == "question":
        question = rng.choice(FACT_TEMPLATES[task.attribute]).format(p=task.person)
        return f"Story: {text} Q: {question} A: {_fact(task.person, task.attribute, facts[task.attribute], rng)}"
    parts = [_clause(task.person, a, v) for a, v in facts.items()]
    return f"Story: {text} In short: {task.person} {', '.join(parts[:-1])} and {parts[-1]}."


def reading_sft(out: Path, n_docs: int, seed: int, device: str, steps: int | None = None) -> Path:
    """Pretrain the tiny base on the corpus plus ``n_docs`` reading exercises, then SFT it (the stage's recipe)."""
    import random
    from minirlhf.io import read_jsonl, write_jsonl_atomic
    from minirlhf.paths import world_dir
    from minirlhf.pretrain import pretrain
    from minirlhf.sft import SFTConfig, run_sft
    rng = random.Random(seed + 5)
    docs = [r["text"] for r in read_jsonl(world_dir() / "corpus.jsonl")] + [reading_document(rng) for _ in range(n_docs)]
    random.Random(seed + 6).shuffle(docs)
    write_jsonl_atomic(out / "corpus_reading.jsonl", [{"text": d} for d in docs])
    pretrain("tiny", out / "base_reading", corpus_path=out / "corpus_reading.jsonl",
             val_path=world_dir() / "corpus_val.jsonl", device=device, seed=seed, steps=steps, progress=False)
    run_sft(out / "base_reading", out / "sft_reading", SFTConfig(seed=seed, device=device), progress=False)
    return out / "sft_reading"


def passage_rows(sft: Path, held: list[dict], n: int, config) -> list[dict]:
    """K samples of ``sft`` on ``n`` new passage-task prompts (none held out), gold-ranked."""
    import random
    from minirlhf.generation import load_model
    from minirlhf.reward import sample_comparisons
    from minirlhf.world.prompts import sample_prompt
    rng, seen, prompts = random.Random(config.seed + 123), {r["prompt"] for r in held}, []
    while len(prompts) < n:
        p = sample_prompt(rng, PASSAGE_TASKS[len(prompts) % 3])
        if p not in seen:
            prompts.append(p)
    policy, tokenizer = load_model(sft, device=config.device)
    return gold_ranked(sample_comparisons(policy, tokenizer, prompts, config, seed=config.seed + 7))


def more_rows(sft: Path, n: int, tau: float, config) -> list[dict]:
    """The RM stage's ``more_prompts`` comparisons (`reward.more_comparisons`): K samples of ``sft`` on
    ``n`` new prompts of the world's mix, found in none of its files, ranked by labelers of ``tau``."""
    from minirlhf.generation import load_model
    from minirlhf.reward import more_comparisons
    policy, tokenizer = load_model(sft, device=config.device)
    return more_comparisons(policy, tokenizer, replace(config, more_prompts=n), tau)


def loglik_scores(sft: Path, rows: list[dict], device: str, batch_size: int = 64) -> list[float]:
    """The SFT model's own log-likelihood of each response (summed over its tokens and eos, tokenized
    as SFT trains on it: `sft.tokenize_example`): a scorer with no training, to see what the language
    model knows that the reward model does not use."""
    import torch.nn.functional as F
    from minirlhf.generation import load_model
    from minirlhf.sft import IGNORE, collate, tokenize_example
    model, tokenizer = load_model(sft, device=device)
    examples = [tokenize_example(tokenizer, row["prompt"], y, tokenizer.model_max_length)
                for row in rows for y in row["responses"]]
    out = []
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            b = {k: v.to(model.device) for k, v in collate(examples[i:i + batch_size], tokenizer.pad_token_id).items()}
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1].float()
            nll = F.cross_entropy(logits.transpose(1, 2), b["labels"][:, 1:], ignore_index=IGNORE, reduction="none")
            out += (-nll.sum(1)).tolist()                          # (B,): sum over the response tokens
    return out


def sft_rates(path: Path, device: str) -> dict:
    from minirlhf.judge import judge_model
    r = judge_model(path, n=None, device=device)
    return {"helpful_rate": r["helpful_rate"], "false_fact_rate": r["false_fact_rate"],
            "helpful_rate_by_category": r["helpful_rate_by_category"]}


def rescored(rows: list[dict], cost: float) -> list[dict]:
    """``rows`` with their utilities scored again by a gold that costs ``cost`` a word (`gold.PER_WORD_COST`)."""
    from minirlhf.world import gold
    saved, gold.PER_WORD_COST = gold.PER_WORD_COST, cost
    try:
        return [dict(r, utilities=[gold.utility(r["prompt"], y) for y in r["responses"]]) for r in rows]
    finally:
        gold.PER_WORD_COST = saved


def with_word_cost(drawn: dict, cost: float, config) -> dict:
    """``drawn``'s very samples in a world whose gold costs ``cost`` a word: utilities scored again
    (`rescored`), the labelers' tau calibrated again on the training pairs and every row ranked again
    by labelers of the same seeds, as `reward.draw_comparisons` does."""
    from minirlhf.reward import calibrate_tau, rank_comparisons
    from minirlhf.world.labelers import Labeler
    train, held = rescored(drawn["train_rows"], cost), rescored(drawn["held_rows"], cost)
    tau = calibrate_tau(train)
    return {"train_rows": train, "held_rows": held, "tau": tau,
            "rankings": rank_comparisons(train, Labeler(tau, seed=10 * config.seed + 1)),
            "heldout": rank_comparisons(held, Labeler(tau, seed=10 * config.seed + 2))}


def train_and_measure(sft: Path, rankings: list[dict], drawn: dict, config, split: list[dict] | None = None) -> dict:
    from minirlhf.reward import evaluate, fresh_labeler, heldout_scores, reward_model_from, train_reward_model
    model, tokenizer = reward_model_from(sft, device=config.device)
    result = train_reward_model(model, tokenizer, rankings, config, progress=False)
    scores = heldout_scores(result.model, tokenizer, drawn["heldout"], config.max_length)
    m = evaluate(result.model, tokenizer, drawn["heldout"], fresh_labeler(drawn["tau"], config),
                 config.max_length, scores=scores)
    return {"train_prompts": len(rankings), "train_s": round(result.seconds, 1),
            "accuracy_gold": m["accuracy_gold"], "accuracy_labelers": m["accuracy_labelers"],
            "gold_tie_share": m["gold_tie_share"],
            **breakdown(drawn["heldout"], scores, split=split)}


def comparisons(sft: Path, prompts: list[str], config) -> dict:
    """The comparisons exactly as the RM stage draws them (`reward.draw_comparisons`)."""
    from minirlhf.generation import load_model
    from minirlhf.io import read_json
    from minirlhf.paths import world_dir
    from minirlhf.reward import draw_comparisons
    policy, tokenizer = load_model(sft, device=config.device)
    tau = read_json(world_dir() / "world.json")["labelers"]["tau"]      # used as is unless calibrate_labelers
    return draw_comparisons(policy, tokenizer, prompts, config, tau)


def one_labeler(drawn: dict) -> dict:
    """One labeler of ``drawn``'s tau: its expected agreement with gold on the held-out pairs gold does not
    tie, and (as ``accuracy_labelers``) with another labeler on all of them."""
    from minirlhf.reward import utility_pairs
    from minirlhf.world.labelers import expected_agreement, gold_agreement
    pairs = utility_pairs(drawn["held_rows"])
    g = gold_agreement(pairs, drawn["tau"])
    return {"accuracy_gold": round(g["non_tied"], 4), "accuracy_labelers": round(expected_agreement(pairs, drawn["tau"]), 4),
            "gold_tie_share": round(g["gold_tie_share"], 4)}


def markdown(r: dict) -> str:
    """A saved result as a markdown table."""
    near = any("pairs_close_near_tie" in v for v in r["variants"].values())   # results saved before it lack it
    head = ("| variant | training prompts | vs gold (non-tied) | close pairs | " + (
            "close, near ties | close, other | " if near else "") + "content pairs | content, passage tasks "
            "| content, other | vs labelers | train time |\n|---|---|---|---|" + "---|---|" * near + "---|---|---|---|---|")
    fmt = lambda x: "–" if x is None else f"{x:.3f}"  # noqa: E731
    cell = lambda v, k: f"{fmt(v.get('accuracy_gold_' + k))} ({v.get('pairs_' + k, 0)}) | "  # noqa: E731
    rows = [f"| {name} | {v['train_prompts']} | {fmt(v['accuracy_gold'])} | {cell(v, 'close')}"
            + (cell(v, "close_near_tie") + cell(v, "close_other") if near else "")
            + cell(v, "content") + cell(v, "content_passage") + cell(v, "content_other")
            + f"{fmt(v['accuracy_labelers'])} | {v['train_s']:.0f} s |" for name, v in r["variants"].items()]
    return "\n".join([head] + rows)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sft", default=None, help="an SFT checkpoint (default: SFT of the shipped tiny model, seed --seed)")
    p.add_argument("--out", default="runs/rm_limits", help="where the SFT checkpoint goes when --sft is not given")
    p.add_argument("--max-prompts", type=int, default=None, help="use the first N comparison prompts (default: all)")
    p.add_argument("--epochs", type=int, default=None, help="RM epochs (default: RMConfig's)")
    p.add_argument("--k9", action="store_true", help="also train on K = 9 samples per prompt")
    p.add_argument("--passage", type=int, default=0, metavar="N",
                   help="also gold rankings plus N more passage-task prompts (variant gold_passage)")
    p.add_argument("--more", type=int, nargs="+", default=[], metavar="N",
                   help="also the labelers' rankings plus N more labeler-ranked prompts of the world's mix "
                        "(labelers_more_N), for each N given")
    p.add_argument("--loglik", action="store_true",
                   help="also score held-out pairs by the SFT model's own log-likelihood, untrained (sft_loglik)")
    p.add_argument("--labeler", action="store_true",
                   help="also one labeler's expected agreement with gold on the same pairs (one_labeler)")
    p.add_argument("--reading", type=int, default=0, metavar="N",
                   help="also RMs from an SFT model whose base saw N reading exercises more (reading_gold, reading_labelers)")
    p.add_argument("--reading-steps", type=int, default=None, help="pretraining steps of that base (default: tiny's)")
    p.add_argument("--word-cost", type=float, nargs="+", default=[], metavar="C",
                   help="also the same samples in a world whose gold costs C a word, ranked again by labelers "
                        "calibrated again (word_cost_C, and one_labeler_word_cost_C), for each C given")
    p.add_argument("--no-defaults", action="store_true",
                   help="skip the labelers / labelers_half / labelers_quarter / gold variants")
    p.add_argument("--seed", type=int, default=0)
    from minirlhf.ladder import emit_result, provenance, result_options, show_saved
    result_options(p)
    args = p.parse_args(argv)
    if args.show:
        return show_saved(args.show, markdown)
    from minirlhf.paths import base_model_dir
    from minirlhf.reward import RMConfig
    config = RMConfig(seed=args.seed, device=args.device, max_prompts=args.max_prompts)
    if args.epochs:
        config = replace(config, epochs=args.epochs)
    start = time.perf_counter()
    sft = Path(args.sft) if args.sft else None
    if sft is None:
        from minirlhf.sft import SFTConfig, run_sft
        sft = Path(args.out) / "sft"
        run_sft(base_model_dir("tiny"), sft, SFTConfig(seed=args.seed, device=args.device), progress=False)
    from minirlhf.reward import comparison_prompts
    prompts = comparison_prompts(config)
    drawn = comparisons(sft, prompts, config)
    rankings, n = drawn["rankings"], len(drawn["rankings"])
    gold = gold_ranked(drawn["train_rows"])              # the same responses, ranked by the noise-free gold
    variants = {} if args.no_defaults else {
        "labelers": rankings, "labelers_half": rankings[:n // 2], "labelers_quarter": rankings[:n // 4],
        "gold": gold}
    out = {**provenance("rm_limits", argv, args.device), "seed": args.seed, "sft": str(sft), "labelers_tau": round(drawn["tau"], 4),
           "k": config.k, "epochs": config.epochs, "variants": {}}
    for name, data in variants.items():
        out["variants"][name] = train_and_measure(sft, data, drawn, config)
        print(f"{name}: {json.dumps(out['variants'][name])}", file=sys.stderr, flush=True)
    if args.passage:
        extra = passage_rows(sft, drawn["held_rows"], args.passage, config)
        out["variants"]["gold_passage"] = train_and_measure(sft, gold + extra, drawn, config)
        print(f"gold_passage: {json.dumps(out['variants']['gold_passage'])}", file=sys.stderr, flush=True)
    from collections import Counter
    from minirlhf.world.prompts import parse_prompt
    for n_more in args.more:
        extra = more_rows(sft, n_more, drawn["tau"], config)
        name = f"labelers_more_{n_more}"
        out["variants"][name] = {**train_and_measure(sft, rankings + extra, drawn, config), "categories_more": dict(
            Counter(parse_prompt(r["prompt"]).category for r in extra).most_common())}
        print(f"{name}: {json.dumps(out['variants'][name])}", file=sys.stderr, flush=True)
    if args.loglik:
        scores = loglik_scores(sft, drawn["heldout"], args.device)
        from minirlhf.reward import evaluate, fresh_labeler
        m = evaluate(None, None, drawn["heldout"], fresh_labeler(drawn["tau"], config), scores=scores)
        out["variants"]["sft_loglik"] = {"train_prompts": 0, "train_s": 0.0, **{k: m[k] for k in (
            "accuracy_gold", "accuracy_labelers", "gold_tie_share")}, **breakdown(drawn["heldout"], scores)}
    if args.labeler:                                     # what the labelers themselves get right, pair by pair
        out["variants"]["one_labeler"] = {"train_prompts": 0, "train_s": 0.0, **one_labeler(drawn),
                                          **breakdown(drawn["heldout"], tau=drawn["tau"])}
    if args.word_cost:                                   # the same samples under other per-word costs,
        split = rescored(drawn["held_rows"], SPLIT_WORD_COST)   # their pairs grouped as at 0.003 a word
        for cost in args.word_cost:
            world = with_word_cost(drawn, cost, config)
            out["variants"][f"word_cost_{cost:g}"] = {**train_and_measure(sft, world["rankings"], world, config, split),
                                                      "labelers_tau": round(world["tau"], 4)}
            out["variants"][f"one_labeler_word_cost_{cost:g}"] = {
                "train_prompts": 0, "train_s": 0.0, **one_labeler(world), **breakdown(world["heldout"], tau=world["tau"],
                                                                                   split=split)}
            print(f"word_cost_{cost:g}: {json.dumps(out['variants'][f'word_cost_{cost:g}'])}", file=sys.stderr, flush=True)
    if args.reading:
        reading = reading_sft(Path(args.out), args.reading, args.seed, args.device, args.reading_steps)
        out["sft_rates"] = {"stage": sft_rates(sft, args.device), "reading": sft_rates(reading, args.device)}
        for name, data in (("reading_gold", gold), ("reading_labelers", rankings)):
            out["variants"][name] = train_and_measure(reading, data, drawn, config)
            print(f"{name}: {json.dumps(out['variants'][name])}", file=sys.stderr, flush=True)
    if args.k9:
        k9 = replace(config, k=9)
        drawn9 = comparisons(sft, prompts, k9)
        out["variants"]["k9"] = {**train_and_measure(sft, drawn9["rankings"], drawn9, k9),
                                 "labelers_tau": round(drawn9["tau"], 4)}
    out["seconds"] = round(time.perf_counter() - start, 1)
    return emit_result(out, args.save)


if __name__ == "__main__":
    main()
