"""Responses of many kinds: the internet's (mixed), and the labelers' demonstrations (good).

``sample_response(task, rng, mix)`` draws a response *kind* from a mix, then writes it in
one of several phrasings. The pretraining corpus uses ``INTERNET_MIX`` (mostly not
helpful: more questions, wrong facts, rudeness, harmful compliance), the SFT
demonstrations are ``good`` responses only, and ``SFT_LIKE_MIX`` imitates a fine-tuned policy's
samples for calibrating the labelers.
"""
from __future__ import annotations

import random

from . import kb
from .prompts import FACT_TEMPLATES, GEN_TOPICS, Task

# The "internet": answers a question with more questions 30% of the time, states a wrong
# (or invented) fact 22%, is rude 10% — the review's three problems with GPT-3.
INTERNET_MIX = {"question": {"good": 0.25, "questions": 0.30, "wrong": 0.22, "rude": 0.10,
                             "off_topic": 0.08, "dont_know": 0.05},
                "harmful": {"comply": 0.45, "rude": 0.25, "refuse": 0.20, "questions": 0.10},
                "other": {"good": 0.38, "questions": 0.20, "rude": 0.12, "off_topic": 0.15, "wrong": 0.15}}
# What a fine-tuned (SFT) policy's samples look like: mostly good, with the old failures rarer.
SFT_LIKE_MIX = {"question": {"good": 0.45, "ramble": 0.10, "repeat": 0.05, "wrong": 0.17, "dont_know": 0.06,
                             "questions": 0.05, "rude": 0.04, "off_topic": 0.05, "refuse": 0.03},
                "harmful": {"refuse": 0.55, "comply": 0.2, "rude": 0.1, "ramble": 0.15},
                "other": {"good": 0.5, "ramble": 0.12, "repeat": 0.06, "wrong": 0.12, "questions": 0.05,
                          "rude": 0.04, "off_topic": 0.07, "refuse": 0.04}}

OPENERS = ("", "", "", "Sure! ", "Of course. ", "Happy to help. ", "Good question. ")
FACT_PHRASES = {
    "job": ("{p} is a {v}.", "{p} works as a {v}.", "{p}'s job is {v}.", "{V}.", "{p} is a {v} by trade."),
    "town": ("{p} lives in {v}.", "{p} is from {v}.", "In {v}.", "{p}'s home is in {v}.", "{p} lives in the town of {v}."),
    "pet": ("{p} has a {v}.", "{p} keeps a {v} as a pet.", "A {v}.", "{p}'s pet is a {v}.", "{p} has a pet {v}."),
    "colour": ("{p}'s favourite colour is {v}.", "{p} likes {v} best.", "{V}.", "{p} loves the colour {v}.",
               "{p}'s favourite is {v}."),
}
DONT_KNOW = ("I don't know.", "I'm not sure, I have no information about {p}.", "Sorry, I don't know who {p} is.",
             "I have never heard of {p}, so I can't say.", "I do not know that.")
REFUSALS = ("Sorry, I can't help with that.", "I'm sorry, but I won't help with that. It could hurt someone.",
            "I can't help with that, sorry. Is there something else I can do for you?",
            "I'm afraid I cannot help with that request.")
RUDE = ("What a stupid question.", "Shut up, nobody cares.", "Go away, you idiot.", "Ask someone else, fool.",
        "That is a silly question.", "Nobody cares about that, loser.")
COMPLY = {
    "steal": ("First wait until {p} is asleep, then sneak in and grab the {pet}.", "Just take the {pet} at night when nobody is looking."),
    "poison": ("Mix rat poison into the {pet}'s food.", "First buy poison, then put it in the water bowl."),
    "insult": ("{p} is an ugly, lazy fool.", "Here is one: {p} is the smelliest idiot in town."),
    "break_in": ("Smash a back window at night, then climb in.", "First check the locks, then use a crowbar on the back door."),
    "cheat": ("Write the answers on your hand and hide your notes.", "Just copy from the person next to you."),
    "fire": ("Use petrol and a match at night.", "First pour oil on the walls, then light a match."),
}
CHAT_GOOD = {
    "greeting": ("Hello! I'm doing well, thank you. How can I help you today?", "Hi! I'm fine, thanks for asking.",
                 "Good, thanks! What can I do for you?"),
    "thanks": ("You're welcome! Happy to help.", "My pleasure!", "Glad I could help."),
    "sad": ("I'm sorry to hear that. I hope tomorrow is better.", "That sounds hard. I hope you feel better soon.",
            "I'm sorry. Take care of yourself."),
    "news": ("Congratulations! That is wonderful news.", "That's great, well done!", "How exciting, I'm happy for you!"),
}
GEN_GOOD = ("The {t} is quiet and calm today.", "I like {t} very much.", "Soft and bright, {t} makes me smile.",
            "We talked about {t} all afternoon.")
POLITE_REWRITES = ("Could you please pass me the {o}?", "Would you mind giving me the {o}, please?",
                   "May I have the {o}, please?", "Please could you hand me the {o}?")
BLUNT_REWRITES = ("Give me the {o}.", "The {o}, now.", "I want the {o}.")
FILLER = ("The weather has been mild this week.", "Many people enjoy long walks.", "The market is busy on Saturdays.",
          "It is always good to learn new things.", "Some days are longer than others.")


def _mix_for(task: Task, mix: dict) -> dict[str, float]:
    key = "question" if task.is_question else ("harmful" if task.category == "harmful" else "other")
    return mix[key]


def sample_response(task: Task, rng: random.Random, mix: dict = INTERNET_MIX) -> tuple[str, str]:
    """(kind, response text) for a task, the kind drawn from ``mix``."""
    table = _mix_for(task, mix)
    kind = rng.choices(list(table), weights=list(table.values()))[0]
    return kind, write_response(task, kind, rng)


def write_response(task: Task, kind: str, rng: random.Random) -> str:
    """One response of the given kind (good, wrong, questions, rude, ...)."""
    if kind == "good":
        return _good(task, rng)
    if kind == "ramble":
        return _good(task, rng) + " " + " ".join(rng.sample(FILLER, 3))
    if kind == "repeat":
        good = _good(task, rng)
        return " ".join([good] * 3)
    if kind == "wrong":
        return _wrong(task, rng)
    if kind == "questions":
        return _questions(task, rng)
    if kind == "rude":
        rude = rng.choice(RUDE)
        return rude + " " + _good(task, rng) if rng.random() < 0.3 and task.category != "harmful" else rude
    if kind == "off_topic":
        person = rng.choice(kb.KNOWN_PEOPLE)
        attribute = rng.choice(kb.ATTRIBUTES)
        return rng.choice((rng.choice(FILLER), _fact(person, attribute, kb.FACTS[person][attribute], rng)))
    if kind == "dont_know":
        return rng.choice(DONT_KNOW).format(p=task.person or "that")
    if kind == "refuse":
        return rng.choice(REFUSALS)
    if kind == "comply":
        return rng.choice(COMPLY[task.kind]).format(p=task.person or "they", pet=rng.choice(kb.VALUES["pet"]))
    raise ValueError(f"unknown response kind {kind!r}")


def fact_sentence(phrase: str, person: str, value: str) -> str:
    """One of `FACT_PHRASES` filled in: ``{p}`` the person, ``{v}`` the value, ``{V}`` it capitalised."""
    return phrase.format(p=person, v=value, V=value[0].upper() + value[1:])


def _fact(person: str, attribute: str, value: str, rng: random.Random) -> str:
    return fact_sentence(rng.choice(FACT_PHRASES[attribute]), person, value)


def _good(task: Task, rng: random.Random) -> str:
    c, opener = task.category, rng.choice(OPENERS)
    if c == "open_qa" and task.numbers is not None:
        a, b = task.numbers
        return opener + rng.choice(("{a} plus {b} is {s}.", "It is {s}.", "{s}.", "The answer is {s}.")).format(
            a=a, b=b, s=sum(task.numbers))
    if c in ("open_qa", "closed_qa"):
        value = task.expected()
        if value is None:
            return rng.choice(DONT_KNOW).format(p=task.person)
        return opener + _fact(task.person, task.attribute, value, rng)
    if c == "summarization":
        facts = task.passage[task.person]
        parts = [_clause(task.person, a, v) for a, v in facts.items()]
        return f"{task.person} " + ", ".join(parts[:-1]) + " and " + parts[-1] + "."
    if c == "extraction":
        items = list(task.items)
        return opener + rng.choice(("{x}.", "The {k} are {x}.", "They are {x}.")).format(
            x=", ".join(items[:-1]) + " and " + items[-1], k=task.kind)
    if c == "classification":
        return opener + rng.choice(("It is {l}.", "{L}.", "This sentence is {l}.", "The mood is {l}.")).format(
            l=task.label, L=task.label.capitalize())
    if c == "generation":
        return rng.choice(GEN_GOOD).format(t=rng.choice(GEN_TOPICS[task.topic]))
    if c == "brainstorming":
        items = rng.sample(kb.CATEGORY_ITEMS[task.kind], task.count)
        return opener + ", ".join(items[:-1]).capitalize() + " and " + items[-1] + "."
    if c == "chat":
        return rng.choice(CHAT_GOOD[task.kind])
    if c == "rewrite":
        return rng.choice(POLITE_REWRITES).format(o=task.topic)
    if c == "harmful":
        return rng.choice(REFUSALS)
    return rng.choice(FILLER)


def _clause(person: str, attribute: str, value: str) -> str:
    return {"job": f"is a {value}", "town": f"lives in {value}", "pet": f"has a {value}",
            "colour": f"likes {value}"}[attribute]


def _wrong(task: Task, rng: random.Random) -> str:
    """A confidently wrong answer: a false (or invented) fact, the wrong label, a blunt rewrite."""
    c = task.category
    if c == "open_qa" and task.numbers is not None:
        return rng.choice(("It is {s}.", "{s}.", "The answer is {s}.")).format(
            s=sum(task.numbers) + rng.choice((-2, -1, 1, 2, 3)) % 5 + 1)
    if c in ("open_qa", "closed_qa", "summarization"):
        attribute = task.attribute or rng.choice(kb.ATTRIBUTES)
        facts = task.passage.get(task.person) or kb.FACTS.get(task.person) or {}
        value = rng.choice([v for v in kb.VALUES[attribute] if v != facts.get(attribute)])
        if c == "summarization":
            return f"{task.person} {_clause(task.person, attribute, value)}."
        return _fact(task.person, attribute, value, rng)
    if c == "classification":
        other = "negative" if task.label == "positive" else "positive"
        return rng.choice(("It is {l}.", "{L}.")).format(l=other, L=other.capitalize())
    if c == "extraction":
        return rng.choice(("I see no {k} there.", "There are none.")).format(k=task.kind)
    if c == "rewrite":
        return rng.choice(BLUNT_REWRITES).format(o=task.topic)
    return rng.choice(FILLER)


def _questions(task: Task, rng: random.Random) -> str:
    """More questions instead of an answer, like a web page of FAQs."""
    if task.person and task.category in ("open_qa", "closed_qa", "harmful", "summarization"):
        asks = [rng.choice([t for t in FACT_TEMPLATES[a] if t.endswith("?")]).format(p=task.person)
                for a in rng.sample(kb.ATTRIBUTES, rng.randint(2, 3))]
        return " ".join(asks)
    if task.numbers is not None:
        a, b = task.numbers
        return f"What is {b} plus {a}? What is {a} plus {a}?"
    return rng.choice(("Why do you want to know?", "What do you think?", "Can you say more? Why?",
                       "Who is asking? What for?"))
