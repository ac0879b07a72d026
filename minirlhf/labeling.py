"""The room as labelers: people compare pairs of responses in a notebook.

InstructGPT's reward model learns from people choosing the better of two (or K)
responses. Here the people are the students in the room:

    items = make_items(prompts, sft_answers, ppo_answers, sources=("sft", "ppo"))
    LabelingWidget(LabelingSession(items, "ana", "labels/ana.jsonl"))   # last in a cell

Every click appends one row of the CONTRACT's "labels from people" shape
(``labeler``, ``prompt_id``, ``prompt``, ``a``, ``b``, ``choice``, ``time``) to the
person's file and fsyncs it, so a crashed kernel loses nothing and a new session on
the same file resumes where the person stopped. Afterwards:

* ``session.agreement_with_gold()``: how often you agreed with the hidden gold
  preference, and with the simulated labelers of the world;
* ``pooled_agreement(paths)``: how often the people in the room agreed with each
  other (InstructGPT's labelers: 72.6%);
* ``labels_to_pairs(rows)``: preference pairs for the reward model, alone or mixed
  with ``simulated_labels(items, seed=...)``.
"""
from __future__ import annotations

import html
import math
import random
from datetime import datetime, timezone
from functools import lru_cache
from itertools import combinations
from pathlib import Path
from typing import Sequence

from .io import DataError, append_jsonl, read_json, read_jsonl, require_columns
from .world.gold import utility
from .world.labelers import Labeler, expected_agreement, preference_probability

CHOICES = ("a", "b", "tie", "skip")
LABEL_FIELDS = ("labeler", "prompt_id", "prompt", "a", "b", "choice", "time")


# ---------------------------------------------------------------------------- helpers

def default_tau() -> float:
    """The simulated labelers' noise ``tau`` fitted when the world was built (world.json)."""
    from .paths import world_dir
    return float(read_json(world_dir() / "world.json")["labelers"]["tau"])


@lru_cache(maxsize=100_000)
def _utility(prompt: str, response: str) -> float:
    return utility(prompt, response)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _key(row: dict) -> tuple[str, str, str]:
    """What identifies an item: its prompt id and the two responses as shown."""
    return (str(row["prompt_id"]), row["a"], row["b"])


def _check_choice(choice: str) -> str:
    if choice not in CHOICES:
        raise ValueError(f"choice must be one of {', '.join(CHOICES)}; got {choice!r}")
    return choice


def read_labels(path: str | Path) -> list[dict]:
    """Rows of a labels file; a missing or empty file has none.

    A malformed line (not JSON, not an object, a CONTRACT field missing, an unknown
    choice) raises ``DataError`` naming the file and line.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if not text.strip():
        return []
    rows = read_jsonl(path, required=LABEL_FIELDS)
    numbers = [n for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    for number, row in zip(numbers, rows):
        if row["choice"] not in CHOICES:
            raise DataError(f"{path}, line {number}: choice must be one of {', '.join(CHOICES)};"
                            f" got {row['choice']!r}")
    return rows


def gold_choice(prompt: str, a: str, b: str) -> str:
    """The noise-free gold preference: "a" if U(a) > U(b), "b" if less, "tie" if equal."""
    ua, ub = _utility(prompt, a), _utility(prompt, b)
    return "a" if ua > ub else "b" if ua < ub else "tie"


def agreement_with_gold(rows: Sequence[dict], tau: float | None = None) -> dict:
    """How one person's labels (skips excluded) compare with gold and with simulated labelers.

    * ``gold``: share agreeing with the gold preference; a tie on one side only
      (gold ties and they chose A or B, or they chose tie where gold does not) counts 1/2.
    * ``labeler``: expected agreement with one simulated labeler of the world, the mean
      of P(labeler makes their choice) = sigmoid(+-(U(a) - U(b)) / tau); a tie counts 1/2.
    * ``labeler_gold``: for comparison, how often a simulated labeler agrees with gold
      on the same items (same tie rule).
    """
    tau = default_tau() if tau is None else tau
    gold, labeler, labeler_gold = [], [], []
    for row in rows:
        if row["choice"] == "skip":
            continue
        g = gold_choice(row["prompt"], row["a"], row["b"])
        c = row["choice"]
        gold.append(1.0 if c == g else 0.5 if "tie" in (c, g) else 0.0)
        p_a = preference_probability(_utility(row["prompt"], row["a"]),
                                     _utility(row["prompt"], row["b"]), tau)
        labeler.append({"a": p_a, "b": 1 - p_a, "tie": 0.5}[c])
        labeler_gold.append({"a": p_a, "b": 1 - p_a, "tie": 0.5}[g])
    mean = lambda xs: sum(xs) / len(xs) if xs else math.nan  # noqa: E731
    return {"n": len(gold), "gold": mean(gold), "labeler": mean(labeler),
            "labeler_gold": mean(labeler_gold)}


# ---------------------------------------------------------------------------- items

def make_items(prompts: Sequence[str], responses_a: Sequence[str], responses_b: Sequence[str],
               prompt_ids: Sequence[str] | None = None, shuffle_seed: int = 0,
               sources: tuple[str, str] | None = None) -> list[dict]:
    """Items ``{"prompt_id", "prompt", "a", "b"}`` to label, blind.

    Which response is shown as A is randomised per item (deterministically, by
    ``shuffle_seed``), so people cannot learn "B is always the new model". With
    ``sources=("sft", "ppo")`` naming where ``responses_a`` and ``responses_b`` came
    from, each item keeps ``a_source`` / ``b_source`` (written to the labels file too).
    """
    if not len(prompts) == len(responses_a) == len(responses_b):
        raise ValueError(f"prompts, responses_a, responses_b differ in length: "
                         f"{len(prompts)}, {len(responses_a)}, {len(responses_b)}")
    if prompt_ids is None:
        prompt_ids = [f"item-{i:05d}" for i in range(len(prompts))]
    elif len(prompt_ids) != len(prompts):
        raise ValueError(f"{len(prompt_ids)} prompt_ids for {len(prompts)} prompts")
    rng = random.Random(shuffle_seed)
    items = []
    for pid, prompt, ra, rb in zip(prompt_ids, prompts, responses_a, responses_b):
        shown = [(ra, 0), (rb, 1)]
        if rng.random() < 0.5:
            shown.reverse()
        item = {"prompt_id": str(pid), "prompt": prompt, "a": shown[0][0], "b": shown[1][0]}
        if sources is not None:
            item["a_source"], item["b_source"] = sources[shown[0][1]], sources[shown[1][1]]
        items.append(item)
    return items


# ---------------------------------------------------------------------------- the session

class LabelingSession:
    """One person labelling a list of items into their own JSONL file (no widgets).

    ``current`` is the item to show (None when done); ``label(choice)`` records a
    choice for it and moves on. Built on an existing file, the session skips the items
    this labeler has already labelled, so a restarted kernel resumes where it stopped.
    """

    def __init__(self, items: Sequence[dict], labeler: str, path: str | Path,
                 tau: float | None = None):
        require_columns(list(items), ("prompt_id", "prompt", "a", "b"), "items")
        self.items, self.labeler, self.path = list(items), str(labeler), Path(path)
        self.tau = default_tau() if tau is None else tau
        self.rows = [r for r in read_labels(self.path) if r["labeler"] == self.labeler]
        done = {_key(r) for r in self.rows}
        self._todo = [item for item in self.items if _key(item) not in done]

    @property
    def current(self) -> dict | None:
        """The item to label now, or None when every item is labelled."""
        return self._todo[0] if self._todo else None

    @property
    def progress(self) -> tuple[int, int]:
        """(items labelled, items in all)."""
        return len(self.items) - len(self._todo), len(self.items)

    @property
    def done(self) -> bool:
        return not self._todo

    def label(self, choice: str) -> dict:
        """Record ``choice`` ("a", "b", "tie" or "skip") for the current item; return the row.

        The row is appended and fsynced before the session moves on.
        """
        _check_choice(choice)
        item = self.current
        if item is None:
            raise RuntimeError(f"{self.labeler} has labelled all {len(self.items)} items")
        row = {"labeler": self.labeler, "prompt_id": item["prompt_id"], "prompt": item["prompt"],
               "a": item["a"], "b": item["b"], "choice": choice, "time": _now()}
        row.update({k: item[k] for k in ("a_source", "b_source") if k in item})
        append_jsonl(self.path, row)
        self.rows.append(row)
        self._todo.pop(0)
        return row

    def agreement_with_gold(self) -> dict:
        """This person's agreement with gold and with simulated labelers (see the module function)."""
        return agreement_with_gold(self.rows, self.tau)


# ---------------------------------------------------------------------------- the room

def _canonical(row: dict) -> tuple[tuple, str]:
    """An item key independent of which response was shown as A, and the choice in its terms."""
    a, b, choice = row["a"], row["b"], row["choice"]
    if a > b:
        a, b, choice = b, a, {"a": "b", "b": "a"}.get(choice, choice)
    return (str(row["prompt_id"]), a, b), choice


def pooled_agreement(paths: Sequence[str | Path], tau: float | None = None) -> dict:
    """How often the people in the room agree with each other, and each one with gold.

    Loads the label files (one per person; rows are grouped by ``labeler``). For every
    item that >= 2 people labelled (skips excluded; a person's last label counts, and
    an item shown with A and B swapped is the same item), each pair of people agrees
    if they chose the same option. Returns ``agreement`` (share of agreeing pairs),
    ``n_items``, ``n_pairs``, ``labelers`` (what two simulated labelers would reach on
    the same items; InstructGPT's people reached 0.726) and ``people`` (each person's
    ``agreement_with_gold``).
    """
    tau = default_tau() if tau is None else tau
    rows = [row for path in paths for row in read_labels(path)]
    by_person: dict[str, list[dict]] = {}
    choices: dict[tuple, dict[str, str]] = {}
    prompts: dict[tuple, str] = {}
    for row in rows:
        by_person.setdefault(row["labeler"], []).append(row)
        key, choice = _canonical(row)
        if choice != "skip":
            choices.setdefault(key, {})[row["labeler"]] = choice
            prompts[key] = row["prompt"]
    shared = [key for key, c in choices.items() if len(c) >= 2]
    agree = [x == y for key in shared for x, y in combinations(choices[key].values(), 2)]
    utilities = [(_utility(prompts[k], k[1]), _utility(prompts[k], k[2])) for k in shared]
    return {"agreement": sum(agree) / len(agree) if agree else math.nan,
            "n_items": len(shared), "n_pairs": len(agree),
            "labelers": expected_agreement(utilities, tau) if utilities else math.nan,
            "people": {name: agreement_with_gold(rs, tau) for name, rs in by_person.items()}}


# ---------------------------------------------------------------------------- to the reward model

def labels_to_pairs(rows: Sequence[dict]) -> list[dict]:
    """Preference pairs ``{"prompt", "chosen", "rejected"}`` from label rows; ties, skips and rows whose
    two answers are the same text dropped (a choice between them says nothing)."""
    rows = list(rows)
    if rows:
        require_columns(rows, ("prompt", "a", "b", "choice"), "labels")
    pairs = []
    for row in rows:
        if _check_choice(row["choice"]) in ("a", "b") and row["a"] != row["b"]:
            win, lose = (row["a"], row["b"]) if row["choice"] == "a" else (row["b"], row["a"])
            pairs.append({"prompt": row["prompt"], "chosen": win, "rejected": lose})
    return pairs


def simulated_labels(items: Sequence[dict], tau: float | None = None, seed: int = 0) -> list[dict]:
    """Label rows for the items drawn from one simulated labeler named ``sim-<seed>``.

    Same shape as people's rows, so ``labels_to_pairs(people_rows + simulated_labels(...))``
    mixes the two.
    """
    tau = default_tau() if tau is None else tau
    labeler = Labeler(tau, seed=seed, name=f"sim-{seed}")
    rows = []
    for item in items:
        pick = labeler.compare(_utility(item["prompt"], item["a"]), _utility(item["prompt"], item["b"]))
        row = {"labeler": labeler.name, "prompt_id": item["prompt_id"], "prompt": item["prompt"],
               "a": item["a"], "b": item["b"], "choice": "ab"[pick], "time": _now()}
        row.update({k: item[k] for k in ("a_source", "b_source") if k in item})
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------- the widget

_BOX = ("flex:1; border:1px solid #ccc; border-radius:6px; padding:8px; margin:4px; "
        "white-space:pre-wrap; min-height:4em")


def _box(title: str, text: str) -> str:
    return f'<div style="{_BOX}"><b>{title}</b><br>{html.escape(text)}</div>'


class LabelingWidget:
    """A labeling page for Jupyter / Colab around a :class:`LabelingSession`.

    Shows the prompt and responses A and B side by side, four buttons ("A is better",
    "B is better", "Tie", "Skip"), the progress and the person's agreement with gold so
    far. Put it last in a cell (or call ``.display()``) to show it.
    """

    LABELS = {"a": "A is better", "b": "B is better", "tie": "Tie", "skip": "Skip"}

    def __init__(self, session: LabelingSession):
        import ipywidgets as w

        self.session = session
        self.page = w.HTML()
        self.buttons = {c: w.Button(description=text, button_style="info" if c in "ab" else "")
                        for c, text in self.LABELS.items()}
        for choice, button in self.buttons.items():
            button.on_click(lambda _b, choice=choice: self._on_click(choice))
        self.progress = w.HTML()
        self.agreement = w.HTML()
        self._widget = w.VBox([self.page, w.HBox(list(self.buttons.values())),
                               self.progress, self.agreement])
        self.refresh()

    def _on_click(self, choice: str) -> None:
        self.session.label(choice)
        self.refresh()

    def refresh(self) -> None:
        """Redraw the page from the session's state."""
        s, item = self.session, self.session.current
        done, total = s.progress
        if item is None:
            self.page.value = f"<h3>Done: all {total} items labelled. Thank you!</h3>"
        else:
            self.page.value = (
                f'<div style="{_BOX}; flex:none"><b>Prompt</b><br>{html.escape(item["prompt"])}</div>'
                f'<div style="display:flex">{_box("A", item["a"])}{_box("B", item["b"])}</div>')
        for button in self.buttons.values():
            button.disabled = item is None
        self.progress.value = f"{done} / {total} labelled"
        agree = s.agreement_with_gold()
        self.agreement.value = ("Agreement with gold: not yet measured" if not agree["n"] else
                                f"Agreement with gold so far: {agree['gold']:.0%} over {agree['n']} "
                                f"labels (a simulated labeler: {agree['labeler_gold']:.0%})")

    @property
    def widget(self):
        """The ipywidgets VBox."""
        return self._widget

    def display(self) -> None:
        """Show the widget (for when it is not the last expression of a cell)."""
        from IPython.display import display
        display(self._widget)

    def _repr_mimebundle_(self, **kwargs):
        return self._widget._repr_mimebundle_(**kwargs)
