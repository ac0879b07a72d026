"""Judge a model with the gold preference: sample it on held-out prompts, report rates.

``minirlhf judge --model PATH --json`` prints CONTRACT's rates:

* ``helpful_rate``: share of responses that do what the prompt asked (gold helpfulness
  >= 0.5, with no false fact and no harm);
* ``false_fact_rate``: share of fact-bearing prompts (fact questions, reading questions,
  summaries) answered with a false or invented statement;
* ``harmful_rate``: share of responses that are rude or comply with a harmful request;
* ``more_questions_rate``: share of question prompts "answered" with further questions;
* ``gold_utility_mean``: mean gold utility U.
"""
from __future__ import annotations

from pathlib import Path

from .world.gold import Judgement, judge_task
from .world.prompts import FACT_CATEGORIES, QUESTION_CATEGORIES, parse_prompt

EVAL_TEMPERATURE = 0.7   # TRL's PPO sampling temperature; also used for every evaluation sample
EVAL_MAX_NEW_TOKENS = 48  # the longest good answer in the world is ~30 tokens


def judge_responses(prompts: list[str], responses: list[str]) -> list[Judgement]:
    """Gold judgements of one response per prompt."""
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    return [judge_task(parse_prompt(p), r) for p, r in zip(prompts, responses)]


def _share(flags: list[bool]) -> float:
    return round(sum(flags) / len(flags), 4) if flags else 0.0


def summarize(js: list[Judgement]) -> dict:
    """CONTRACT's judge rates (and per-category helpful rates) from gold judgements."""
    by_category: dict[str, list[bool]] = {}
    for j in js:
        by_category.setdefault(j.category, []).append(j.is_helpful)
    return {
        "n": len(js),
        "helpful_rate": _share([j.is_helpful for j in js]),
        "false_fact_rate": _share([j.false_facts > 0 for j in js if j.category in FACT_CATEGORIES]),
        "harmful_rate": _share([j.harmful for j in js]),
        "more_questions_rate": _share([j.asked_questions for j in js if j.category in QUESTION_CATEGORIES]),
        "gold_utility_mean": round(sum(j.utility for j in js) / len(js), 4),
        "helpful_rate_by_category": {c: _share(v) for c, v in sorted(by_category.items())},
    }


def rates(prompts: list[str], responses: list[str]) -> dict:
    """CONTRACT's judge rates for paired prompts/responses."""
    return summarize(judge_responses(prompts, responses))


def eval_prompts(n: int | None = None, path: str | Path | None = None) -> list[str]:
    """The first ``n`` held-out evaluation prompts of the world."""
    from .io import read_jsonl
    from .paths import world_dir
    rows = read_jsonl(path or world_dir() / "eval_prompts.jsonl", required=("prompt",))
    return [r["prompt"] for r in rows[:n]]


def judge_model(model_path: str | Path, n: int = 200, device: str = "cpu", seed: int = 0,
                temperature: float = EVAL_TEMPERATURE, with_samples: bool = False, model=None,
                tokenizer=None) -> dict:
    """Sample a model on ``n`` held-out prompts and return its gold rates."""
    from .generation import generate, load_model
    if model is None:
        if not (Path(model_path) / "config.json").is_file():
            raise FileNotFoundError(f"no Hugging Face model folder at {model_path} (config.json missing)")
        model, tokenizer = load_model(str(model_path), device=device)
    prompts = eval_prompts(n)
    responses = generate(model, tokenizer, prompts, max_new_tokens=EVAL_MAX_NEW_TOKENS,
                         temperature=temperature, seed=seed)
    js = judge_responses(prompts, responses)
    out = {"model": str(model_path), **summarize(js)}
    if with_samples:
        out["samples"] = [{"prompt": p, "response": r, "utility": j.utility}
                          for p, r, j in zip(prompts, responses, js)]
    return out
