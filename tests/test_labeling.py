"""Tests of minirlhf.labeling: the widget driven by clicks, the file, agreement numbers (fast)."""
from __future__ import annotations

import math

import pytest

from minirlhf.io import DataError, append_jsonl, read_jsonl
from minirlhf.labeling import (LABEL_FIELDS, LabelingSession, LabelingWidget, agreement_with_gold,
                               labels_to_pairs, make_items, pooled_agreement, simulated_labels)
from minirlhf.world import kb
from minirlhf.world.gold import utility
from minirlhf.world.labelers import preference_probability

TAU = 0.4
Q = "What does Ada do for a living?"
JOB = kb.FACTS["Ada"]["job"]
GOOD, GOOD2 = f"Ada is a {JOB}.", f"She is a {JOB}."          # equal gold utility (a gold tie)
BAD = f"Ada is a {next(v for v in kb.VALUES['job'] if v != JOB)}."
P = preference_probability(utility(Q, GOOD), utility(Q, BAD), TAU)


def item(pid, a, b, prompt=Q):
    return {"prompt_id": pid, "prompt": prompt, "a": a, "b": b}


ITEMS = [item("i1", GOOD, BAD), item("i2", BAD, GOOD), item("i3", GOOD, GOOD2)]


def test_constructed_pairs_are_what_the_tests_assume():
    assert utility(Q, GOOD) == utility(Q, GOOD2) > utility(Q, BAD)
    assert 0.5 < P < 1


def test_widget_clicks_write_the_file_and_a_new_session_resumes(tmp_path):
    path = tmp_path / "ana.jsonl"
    w = LabelingWidget(LabelingSession(ITEMS, "ana", path, tau=TAU))
    assert "0 / 3 labelled" in w.progress.value and "not yet" in w.agreement.value
    w.buttons["a"].click()
    rows = read_jsonl(path)
    assert len(rows) == 1 and set(rows[0]) == set(LABEL_FIELDS)
    assert rows[0]["labeler"] == "ana" and rows[0]["choice"] == "a" and rows[0]["prompt_id"] == "i1"
    assert rows[0]["time"].endswith("+00:00")
    assert "1 / 3 labelled" in w.progress.value and "100%" in w.agreement.value
    w.buttons["skip"].click()

    # the kernel dies here; a new session on the same file resumes at item 3
    again = LabelingSession(ITEMS, "ana", path, tau=TAU)
    assert again.progress == (2, 3) and again.current == ITEMS[2]
    w2 = LabelingWidget(again)
    assert GOOD2 in w2.page.value
    w2.buttons["tie"].click()
    assert again.current is None and again.progress == (3, 3)
    assert "Done" in w2.page.value and all(b.disabled for b in w2.buttons.values())
    rows = read_jsonl(path)
    assert [r["choice"] for r in rows] == ["a", "skip", "tie"]
    assert all(set(r) == set(LABEL_FIELDS) for r in rows)
    assert LabelingSession(ITEMS, "bob", path, tau=TAU).progress == (0, 3)  # per labeler
    with pytest.raises(RuntimeError):
        again.label("a")


def test_widget_shows_in_a_notebook():
    w = LabelingWidget(LabelingSession(ITEMS, "ana", "/nonexistent-dir-never-written/x.jsonl", tau=TAU))
    assert "application/vnd.jupyter.widget-view+json" in w._repr_mimebundle_()
    assert w.widget is w._widget


def test_html_is_escaped(tmp_path):
    items = [item("x", "<b>bold</b> & co", "fine", prompt="<script>alert(1)</script>")]
    w = LabelingWidget(LabelingSession(items, "ana", tmp_path / "l.jsonl", tau=TAU))
    assert "<script>" not in w.page.value and "&lt;script&gt;alert(1)&lt;/script&gt;" in w.page.value
    assert "<b>bold</b>" not in w.page.value and "&lt;b&gt;bold&lt;/b&gt; &amp; co" in w.page.value


def test_invalid_choice_raises_and_writes_nothing(tmp_path):
    path = tmp_path / "l.jsonl"
    s = LabelingSession(ITEMS, "ana", path, tau=TAU)
    with pytest.raises(ValueError, match="choice"):
        s.label("A")
    assert not path.exists() and s.progress == (0, 3)


def test_malformed_file_raises_with_file_and_line(tmp_path):
    path = tmp_path / "l.jsonl"
    LabelingSession(ITEMS, "ana", path, tau=TAU).label("a")
    with open(path, "a") as f:
        f.write("{not json\n")
    with pytest.raises(DataError, match=r"l\.jsonl, line 2"):
        LabelingSession(ITEMS, "ana", path, tau=TAU)
    path.write_text('{"labeler": "ana", "prompt_id": "i1"}\n')
    with pytest.raises(DataError, match="line 1.*missing"):
        LabelingSession(ITEMS, "ana", path, tau=TAU)


def test_agreement_with_gold_known_answer(tmp_path):
    items = [item("1", GOOD, BAD), item("2", BAD, GOOD), item("3", GOOD, GOOD2), item("4", GOOD, BAD),
             item("5", GOOD, BAD), item("6", GOOD, GOOD2), item("7", GOOD, BAD)]
    s = LabelingSession(items, "ana", tmp_path / "l.jsonl", tau=TAU)
    for choice in ["a", "a", "b", "tie", "skip", "tie", "a"]:
        s.label(choice)
    # gold:    1,   0,   1/2,  1/2,  (skip), 1,  1      labeler: p, 1-p, 1/2, 1/2, 1/2, p
    got = s.agreement_with_gold()
    assert got["n"] == 6
    assert got["gold"] == pytest.approx(4 / 6)
    assert got["labeler"] == pytest.approx((2.5 + P) / 6)
    assert got["labeler_gold"] == pytest.approx((P + P + 0.5 + P + 0.5 + P) / 6)
    assert math.isnan(agreement_with_gold([], TAU)["gold"])


def test_pooled_agreement_known_answer(tmp_path):
    i1, i2, i3, i4, i6 = (item("1", GOOD, BAD), item("2", BAD, GOOD), item("3", GOOD, GOOD2),
                          item("4", GOOD, BAD), item("6", GOOD2, BAD))
    ann = LabelingSession([i1, i2, i3, i4, i6], "ann", tmp_path / "ann.jsonl", tau=TAU)
    for choice in ["a", "b", "a", "a", "tie"]:
        ann.label(choice)
    i2_swapped = item("2", GOOD, BAD)
    bob = LabelingSession([i1, i2_swapped, i3, i6, item("5", GOOD, BAD)], "bob", tmp_path / "bob.jsonl",
                          tau=TAU)
    for choice in ["a", "a", "skip", "a", "b"]:
        bob.label(choice)
    got = pooled_agreement([tmp_path / "ann.jsonl", tmp_path / "bob.jsonl"], tau=TAU)
    # shared non-skip items: 1 (agree), 2 (agree, shown swapped), 6 (tie vs a: disagree)
    assert got["n_items"] == 3 and got["n_pairs"] == 3
    assert got["agreement"] == pytest.approx(2 / 3)
    assert got["labelers"] == pytest.approx(P * P + (1 - P) ** 2)
    assert got["people"]["ann"] == ann.agreement_with_gold()
    assert got["people"]["bob"] == bob.agreement_with_gold()


def test_labels_to_pairs_drops_ties_skips_and_identical_answers():
    rows = [dict(item(str(i), GOOD, BAD), choice=c) for i, c in enumerate(["a", "b", "tie", "skip"])]
    rows.append(dict(item("same", GOOD, GOOD), choice="a"))        # a choice between one text and itself
    assert labels_to_pairs(rows) == [{"prompt": Q, "chosen": GOOD, "rejected": BAD},
                                     {"prompt": Q, "chosen": BAD, "rejected": GOOD}]
    assert labels_to_pairs([]) == []
    with pytest.raises(ValueError):
        labels_to_pairs([dict(rows[0], choice="maybe")])


def test_simulated_labels_have_the_same_shape_and_mix(tmp_path):
    items = [item(str(i), GOOD, BAD) for i in range(20)]
    sim = simulated_labels(items, tau=TAU, seed=3)
    assert [r["choice"] for r in sim] == [r["choice"] for r in simulated_labels(items, tau=TAU, seed=3)]
    assert all(set(r) == set(LABEL_FIELDS) and r["labeler"] == "sim-3" for r in sim)
    assert {r["choice"] for r in sim} <= {"a", "b"}
    assert sum(r["choice"] == "a" for r in sim) >= 18                   # GOOD is A: P(a) ~ 0.996 per item
    swapped = simulated_labels([item(str(i), BAD, GOOD) for i in range(20)], tau=TAU, seed=3)
    assert sum(r["choice"] == "b" for r in swapped) >= 18               # it follows the answers, not the side
    for r in sim:
        append_jsonl(tmp_path / "sim.jsonl", r)
    assert len(labels_to_pairs(read_jsonl(tmp_path / "sim.jsonl") + sim)) == 40


def test_make_items_is_blind_deterministic_and_keeps_sources():
    prompts = [f"p{i}" for i in range(40)]
    old, new = [f"old{i}" for i in range(40)], [f"new{i}" for i in range(40)]
    items = make_items(prompts, old, new, shuffle_seed=1, sources=("sft", "ppo"))
    assert items == make_items(prompts, old, new, shuffle_seed=1, sources=("sft", "ppo"))
    swapped = [it["a"].startswith("new") for it in items]
    assert 5 < sum(swapped) < 35
    for it in items:
        assert {it["a_source"], it["b_source"]} == {"sft", "ppo"}
        assert it[f"{'a' if it['a'].startswith('old') else 'b'}_source"] == "sft"
    assert items[0]["prompt_id"] == "item-00000" and "a_source" not in make_items(["p"], ["x"], ["y"])[0]
    with pytest.raises(ValueError):
        make_items(prompts, old, new[:3])


def test_sources_go_into_the_labels_file(tmp_path):
    items = make_items([Q], [GOOD], [BAD], prompt_ids=["q1"], sources=("sft", "ppo"))
    LabelingSession(items, "ana", tmp_path / "l.jsonl", tau=TAU).label("a")
    row = read_jsonl(tmp_path / "l.jsonl")[0]
    assert row["prompt_id"] == "q1" and {row["a_source"], row["b_source"]} == {"sft", "ppo"}
