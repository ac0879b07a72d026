"""How the policies of finished runs answer questions about the world's known people, by form.

    python benchmarks/answer_forms.py runs/c0 runs/c1 runs/c2
    python benchmarks/answer_forms.py runs/c0 runs/c1 runs/c2 --save data/results/answer_forms_cpu.json
    python benchmarks/answer_forms.py --show data/results/answer_forms_cpu.json

Each run's evaluation answers (``samples.jsonl``) to open questions about a known person are sorted
into four forms: **named** ("Ada is a baker."), **bare** ("Baker.": the person is not named),
**hedge** ("I don't know.", "I'm not sure") and **opening** (one of the world's polite openings, "Of
course.", and nothing after it). Per form and model: how many answers, and the share that
is helpful by gold (right, and no false fact). A tiny model recalls a fact better right after the
person's name, so the form a policy moves to decides how many facts it gets right.

For each run it also asks whether the reward model checks facts about known people: each question's
right answer in every phrasing the world writes ("Ada is a baker.", "Ada's job is baker.", ...) beside the
same phrasing with another value of that attribute; the share of such pairs the reward model orders as
gold does, and the mean margins. A reward model that cannot tell them apart lets PPO pick any value.

For each run it also puts the hedge "I don't know." (and the opening "Of course." alone) beside the SFT
model's own answer to each of those questions: how often and by how much the run's reward model (with its likelihood prior when it has
one) scores the hedge higher, how much gold prefers the answer, and how much less likely the SFT
model is to say the hedge. A policy that finds a hedge the reward model overrates gains by hedging.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))      # seed_table's command line
from minirlhf import io  # noqa: E402
from minirlhf.world.responses import OPENERS  # noqa: E402

FORMS = ("named", "bare", "hedge", "opening")
HEDGE = "I don't know."
OPENING = "Of course."
HEDGES = ("don't know", "do not know", "not sure", "no information", "no idea")
OPENINGS = {o.strip().lower() for o in OPENERS}     # the world's polite openings, "" among them


def form(person: str, answer: str) -> str:
    """``hedge`` when the answer says it does not know, ``opening`` when it is a polite opening alone (or
    empty), ``named`` when it names the person, else ``bare``."""
    low = answer.lower()
    if low.strip() in OPENINGS:
        return "opening"
    if any(h in low for h in HEDGES):
        return "hedge"
    return "named" if person.lower() in low else "bare"


def known_person_rows(folder: str | Path, models: tuple[str, ...]) -> list[tuple]:
    """(task, row) for each of a run's evaluation samples (``samples.jsonl``) that is an open question
    about a known person; each row has the answers of ``models``."""
    from minirlhf.world import kb
    from minirlhf.world.prompts import parse_prompt
    rows = io.read_jsonl(Path(folder) / "samples.jsonl", required=("prompt", *models))
    tasks = ((parse_prompt(row["prompt"]), row) for row in rows)
    return [(t, row) for t, row in tasks if t.category == "open_qa" and t.person in kb.KNOWN_PEOPLE]


def run_forms(folder: str | Path, models: tuple[str, ...] = ("sft", "ppo")) -> dict:
    """{model: {form: {"n", "helpful"}}} over one run's known-person open questions."""
    from minirlhf.world.gold import judge_task
    out = {m: {f: {"n": 0, "helpful": 0} for f in FORMS} for m in models}
    for task, row in known_person_rows(folder, models):
        for m in models:
            cell = out[m][form(task.person, row[m])]
            cell["n"] += 1
            cell["helpful"] += judge_task(task, row[m]).is_helpful
    return out


def rm_prefers_hedge(folder: str | Path, alternative: str = HEDGE) -> dict | None:
    """How a run's reward model and SFT model see ``alternative`` (the hedge "I don't know.", or the opening
    "Of course." alone) on the known-person questions: ``share``, where the reward model scores it above the
    SFT answer; ``rm_margin``, its mean score minus the SFT answer's; ``gold_margin``, the same by gold
    utility; ``logp_hedge`` and ``logp_sft``, the mean log pi_SFT of the alternative and of the SFT answer. None for a folder without a reward model (``rm/``). For a run
    made with ``--rounds N``, the reward model of its last round (``roundN/rm``), the one its reported policy met."""
    from minirlhf.generation import load_model
    from minirlhf.ppo import LearnedReward
    from minirlhf.reward import response_logliks
    from minirlhf.world.gold import utility
    from minirlhf.io import read_json
    rows = [row for _, row in known_person_rows(folder, ("sft",))]
    rounds = read_json(Path(folder) / "summary.json").get("rounds") if (Path(folder) / "summary.json").is_file() else None
    rm_dir = Path(folder) / (f"round{rounds[-1]['round']}/rm" if rounds else "rm")   # --rounds N: the last round's
    if not rm_dir.is_dir() or not rows:
        return None
    prompts, answers, hedges = [r["prompt"] for r in rows], [r["sft"] for r in rows], [alternative] * len(rows)
    reward = LearnedReward.load(rm_dir)
    hedge, sft = reward(prompts, hedges), reward(prompts, answers)
    lm, tokenizer = load_model(Path(folder) / "sft", "cpu")
    logp_hedge, logp_sft = (response_logliks(lm, tokenizer, prompts, ys)[:, 0].mean() for ys in (hedges, answers))
    gold = sum(utility(p, a) - utility(p, alternative) for p, a in zip(prompts, answers)) / len(rows)
    mean = lambda x: round(float(x), 4)  # noqa: E731
    return {"n": len(rows), "share": mean((hedge > sft).float().mean()), "rm_margin": mean((hedge - sft).mean()),
            "gold_margin": mean(-gold), "logp_hedge": mean(logp_hedge), "logp_sft": mean(logp_sft)}


def rm_checks_facts(folder: str | Path, seed: int = 0) -> dict | None:
    """Right against wrong values in the same phrasing (`FACT_PHRASES`), on a run's known-person questions:
    ``share``, where the run's reward model scores the right one higher; ``rm_margin`` and ``gold_margin``,
    the mean score differences (right − wrong); ``sft_share``, where the run's SFT model finds the right one
    more likely; ``n`` pairs. None for a folder without a reward model."""
    import random

    from minirlhf.generation import load_model
    from minirlhf.ppo import LearnedReward
    from minirlhf.reward import response_logliks
    from minirlhf.world import kb
    from minirlhf.world.gold import utility
    from minirlhf.world.responses import FACT_PHRASES, fact_sentence
    rm_dir = Path(folder) / "rm"
    tasks = [(t, row["prompt"]) for t, row in known_person_rows(folder, ()) if t.attribute]
    if not rm_dir.is_dir() or not tasks:
        return None
    rng, prompts, right, wrong = random.Random(seed), [], [], []
    for task, prompt in tasks:
        value = kb.FACTS[task.person][task.attribute]
        for phrase in FACT_PHRASES[task.attribute]:
            other = rng.choice([v for v in kb.VALUES[task.attribute] if v != value])
            prompts.append(prompt)
            right.append(fact_sentence(phrase, task.person, value))
            wrong.append(fact_sentence(phrase, task.person, other))
    reward = LearnedReward.load(rm_dir)
    r_right, r_wrong = reward(prompts, right), reward(prompts, wrong)
    gold = sum(utility(p, a) - utility(p, b) for p, a, b in zip(prompts, right, wrong)) / len(prompts)
    lm, tokenizer = load_model(Path(folder) / "sft", "cpu")
    l_right, l_wrong = (response_logliks(lm, tokenizer, prompts, ys)[:, 0] for ys in (right, wrong))
    return {"n": len(prompts), "share": round(float((r_right > r_wrong).float().mean()), 4),
            "rm_margin": round(float((r_right - r_wrong).mean()), 4), "gold_margin": round(gold, 4),
            "sft_share": round(float((l_right > l_wrong).double().mean()), 4)}


def table(saved: dict) -> str:
    lines = ["| run | model | " + " | ".join(f"{f}: answers (helpful)" for f in FORMS) + " |",
             "|---|---|" + "---|" * len(FORMS)]
    for run, models in saved["runs"].items():
        for m, cells in models.items():
            shown = [f"{c['n']} ({c['helpful'] / c['n']:.2f})" if c["n"] else "0"
                     for c in (cells.get(f, {"n": 0}) for f in FORMS)]      # files saved before "opening": 0
            lines.append(f"| {run} | {m} | " + " | ".join(shown) + " |")
    if saved.get("rm_checks_facts"):
        lines += ["", "| run | RM scores the right value above a wrong one | RM: right − wrong | gold: right − wrong "
                  "| SFT finds the right value more likely |", "|---|---|---|---|---|"]
        lines += [f"| {run} | {c['share']:.2f} of {c['n']} | {c['rm_margin']:+.2f} | {c['gold_margin']:+.2f} | "
                  f"{c['sft_share']:.2f} |" for run, c in saved["rm_checks_facts"].items() if c]
    for key, said in (("rm_prefers_hedge", HEDGE), ("rm_prefers_opening", OPENING)):
        if saved.get(key):
            lines += ["", f"| run | RM scores \"{said}\" above the SFT answer | RM: it − SFT answer | "
                      "gold: it − SFT answer | log pi_SFT: it / SFT answer |", "|---|---|---|---|---|"]
            lines += [f"| {run} | {c['share']:.2f} of {c['n']} | {c['rm_margin']:+.2f} | {c['gold_margin']:+.2f} | "
                      f"{c['logp_hedge']:.1f} / {c['logp_sft']:.1f} |" for run, c in saved[key].items() if c]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    from seed_table import folders_main
    return folders_main("answer_forms.py", __doc__.splitlines()[0],
                        lambda runs: {"runs": {str(r): run_forms(r) for r in runs},
                                      "rm_checks_facts": {str(r): rm_checks_facts(r) for r in runs},
                                      "rm_prefers_hedge": {str(r): rm_prefers_hedge(r) for r in runs},
                                      "rm_prefers_opening": {str(r): rm_prefers_hedge(r, OPENING) for r in runs}},
                        table, argv)


if __name__ == "__main__":
    main()
