"""The benchmark scripts run end to end on the shipped tiny model (micro sizes)."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_real_model_run_measures_win_rates_and_saves_its_result(tmp_path, capsys):
    from minirlhf.paths import base_model_dir
    run = _script("real_model_run")
    saved = tmp_path / "result.json"
    out = run.main(["--model", str(base_model_dir("tiny")), "--demos", "32", "--rm-prompts", "20",
                    "--ppo-iterations", "2", "--batch", "8", "--eval-prompts", "12", "--out", str(tmp_path / "run"),
                    "--save", str(saved)])
    assert json.loads(saved.read_text()) == json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == out
    for name in ("ppo_vs_sft", "sft_vs_base"):
        w = out["win_rates"][name]
        assert w["n"] == 12 and w["ci95"][0] <= w["gold"] <= w["ci95"][1]
        assert abs(w["wins"] + w["ties"] + w["losses"] - 1) < 1e-3   # each rounded to 4 places
    assert out["sizes"]["ppo_iterations"] == 2 and out["ppo_iter_s_median"] > 0 and out["peak_memory_gib"] > 0
    assert (tmp_path / "run" / "ppo" / "policy" / "model.safetensors").exists()
    assert len((tmp_path / "run" / "samples.jsonl").read_text().splitlines()) == 12
    table = run.markdown(out)
    assert "PPO vs its SFT start" in table and f"{out['win_rates']['ppo_vs_sft']['gold']:.3f}" in table
    assert run.main(["--show", str(saved)]) == out


def test_sampling_speed_times_both_samplers():
    out = _script("sampling_speed").main(["--n", "8", "--new-tokens", "4", "--repeats", "1"])
    assert out["n"] == 8 and out["generate_s"] > 0 and out["model_generate_s"] > 0 and out["speedup"] > 0


def test_rm_limits_trains_every_variant_on_the_same_samples(tmp_path, capsys):
    from minirlhf.paths import base_model_dir
    limits = _script("rm_limits")
    saved = tmp_path / "limits.json"
    out = limits.main(["--sft", str(base_model_dir("tiny")), "--max-prompts", "20", "--epochs", "1", "--save", str(saved)])
    assert json.loads(saved.read_text()) == out
    assert set(out["variants"]) == {"labelers", "labelers_half", "labelers_quarter", "gold"}
    v = out["variants"]
    assert v["labelers"]["train_prompts"] == v["gold"]["train_prompts"] == 16
    assert v["labelers_half"]["train_prompts"] == 8 and v["labelers_quarter"]["train_prompts"] == 4
    for x in v.values():
        assert 0 <= x["accuracy_gold"] <= 1 and x["pairs_content"] == x["pairs_content_passage"] + x["pairs_content_other"]
        assert x["pairs_close"] + x["pairs_content"] > 0
    capsys.readouterr()
    limits.main(["--show", str(saved)])
    assert "| gold | 16 |" in capsys.readouterr().out


def test_rm_limits_capacity_variants(tmp_path):
    """--passage adds gold-ranked passage-task comparisons; --reading pretrains a base with reading
    exercises (5 steps here), fine-tunes it and trains RMs from it on the same rankings."""
    from minirlhf.paths import base_model_dir
    from minirlhf.world.prompts import parse_prompt
    limits = _script("rm_limits")
    import random
    docs = [limits.reading_document(random.Random(i)) for i in range(40)]
    assert any(d.startswith("Story: ") and " Q: " in d for d in docs) and any(" here: " in d for d in docs)
    out = limits.main(["--sft", str(base_model_dir("tiny")), "--max-prompts", "20", "--epochs", "1", "--no-defaults",
                       "--passage", "6", "--reading", "30", "--reading-steps", "5", "--out", str(tmp_path)])
    assert set(out["variants"]) == {"gold_passage", "reading_gold", "reading_labelers"}
    assert out["variants"]["gold_passage"]["train_prompts"] == 16 + 6
    assert out["variants"]["reading_gold"]["train_prompts"] == 16
    assert (tmp_path / "sft_reading" / "config.json").exists()
    corpus = (tmp_path / "corpus_reading.jsonl").read_text()
    assert corpus.count("Story: ") + corpus.count(" here: ") >= 30
    for rates in out["sft_rates"].values():
        assert 0 <= rates["helpful_rate"] <= 1 and "closed_qa" in rates["helpful_rate_by_category"]
    rows = limits.passage_rows(base_model_dir("tiny"), [], 3, limits_config())
    assert [parse_prompt(r["prompt"]).category for r in rows] == list(limits.PASSAGE_TASKS)


def test_rm_limits_more_prompts_and_loglik():
    """--more adds labeler-ranked comparisons on prompts found in none of the world's files; --loglik
    scores the held-out pairs by the SFT model's own log-likelihood, with no reward model; --labeler
    gives one labeler's expected agreement with gold on the same pairs."""
    from minirlhf.io import read_jsonl
    from minirlhf.paths import base_model_dir, world_dir
    limits = _script("rm_limits")
    out = limits.main(["--sft", str(base_model_dir("tiny")), "--max-prompts", "20", "--epochs", "1", "--no-defaults",
                       "--more", "6", "--loglik", "--labeler"])
    v = out["variants"]
    assert set(v) == {"labelers_more_6", "sft_loglik", "one_labeler"} and v["labelers_more_6"]["train_prompts"] == 16 + 6
    one = v["one_labeler"]                  # sigmoid(|dU| / tau) rises with |dU|: content pairs are easier than close ones
    assert one["train_prompts"] == 0 and 0.5 <= one["accuracy_gold"] <= 1 and 0.5 <= one["accuracy_labelers"] <= 1
    if one["pairs_close"] and one["pairs_content"]:
        assert one["accuracy_gold_content"] > one["accuracy_gold_close"] >= 0.5
    assert sum(v["labelers_more_6"]["categories_more"].values()) == 6
    assert v["sft_loglik"]["train_prompts"] == 0 and 0 <= v["sft_loglik"]["accuracy_gold"] <= 1
    rows = [{"prompt": "What is 2 plus 3?", "responses": ["It is 5.", "zq zq qz zq"]}]
    s = limits.loglik_scores(base_model_dir("tiny"), rows, "cpu")
    assert s[1] < s[0] < 0                                  # a log-likelihood, and the garbled answer is less likely
    assert s == pytest.approx(limits.loglik_scores(base_model_dir("tiny"), rows + rows, "cpu", batch_size=1)[:2], abs=1e-4)
    rows = limits.more_rows(base_model_dir("tiny"), 5, 0.1, limits_config())
    used = {r["prompt"] for f in world_dir().glob("*_prompts.jsonl") for r in read_jsonl(f)}
    assert len(rows) == 5 and not used & {r["prompt"] for r in rows}
    assert all(sorted(r["ranking"]) == [0, 1] for r in rows)                      # K = 2, ranked


def test_rm_limits_breakdown_splits_near_ties_by_hand():
    """Near ties (|dU| <= 0.02) and the other close pairs are counted apart; content pairs as before."""
    limits = _script("rm_limits")
    rows = [{"prompt": "Tell me two fruits.", "responses": ["a", "b", "c", "d"], "utilities": [0.0, -0.01, -0.2, -1.0]}]
    b = limits.breakdown(rows, [0.0, 1.0, -1.0, -2.0])   # the RM gets the near tie (0, 1) wrong, all else right
    assert (b["pairs_close_near_tie"], b["accuracy_gold_close_near_tie"]) == (1, 0.0)
    assert (b["pairs_close_other"], b["accuracy_gold_close_other"]) == (2, 1.0)
    assert (b["pairs_close"], b["pairs_content"], b["accuracy_gold_content_other"]) == (3, 3, 1.0)
    table = limits.markdown({"variants": {"v": {"train_prompts": 1, "train_s": 0.0, "accuracy_gold": 0.8,
                                                "accuracy_labelers": 0.7, **b}}})
    assert "close, near ties" in table and "| 0.000 (1) | 1.000 (2) |" in table


def test_rm_limits_word_cost_reranks_the_same_samples():
    """--word-cost C scores the very samples again with gold costing C a word, calibrates tau again and
    ranks again; its pairs are grouped by their gaps at the old 0.003 a word, the same in every variant."""
    from minirlhf.paths import base_model_dir
    from minirlhf.world import gold
    limits = _script("rm_limits")
    cost = gold.PER_WORD_COST
    out = limits.main(["--sft", str(base_model_dir("tiny")), "--max-prompts", "20", "--epochs", "1", "--no-defaults",
                       "--word-cost", "0.003", "0.05"])
    assert gold.PER_WORD_COST == cost                       # the world's cost is put back
    v = out["variants"]
    assert set(v) == {"word_cost_0.003", "one_labeler_word_cost_0.003", "word_cost_0.05", "one_labeler_word_cost_0.05"}
    assert v["word_cost_0.003"]["train_prompts"] == v["word_cost_0.05"]["train_prompts"] == 16
    assert v["word_cost_0.05"]["labelers_tau"] != v["word_cost_0.003"]["labelers_tau"]   # calibrated again
    assert 0.5 <= v["one_labeler_word_cost_0.05"]["accuracy_gold"] <= 1
    drawn = {"train_rows": [{"prompt": "What is 2 plus 3?", "responses": ["5.", "It is 5, I think so."]}] * 30,
             "held_rows": [{"prompt": "What is 2 plus 3?", "responses": ["5.", "It is 5, I think so."]}]}
    w = limits.with_word_cost(drawn, 0.05, limits_config())
    u = w["held_rows"][0]["utilities"]
    assert u[0] - u[1] == pytest.approx(0.05 * 5, abs=1e-3)     # five more words, nothing else different
    assert gold.PER_WORD_COST == cost and sorted(w["heldout"][0]["ranking"]) == [0, 1]
    same = limits.with_word_cost(drawn, cost, limits_config())      # the world's own cost: gold's own utilities
    assert same["held_rows"][0]["utilities"] == [gold.utility("What is 2 plus 3?", y) for y in ("5.", "It is 5, I think so.")]


def limits_config():
    from minirlhf.reward import RMConfig
    return RMConfig(k=2, max_new_tokens=8)


def test_gpu_results_gathers_a_session_folder(tmp_path):
    """benchmarks/gpu_results.py turns gpu_session.sh's files into one record: the last JSON line
    of each benchmark (TRL logs before it), the ratios, the commit, the profile's parts and the
    other runs of ppo_speed.py (--compile, --no-cuda-graphs ...) with their ratios."""
    gpu = _script("gpu_results")
    (tmp_path / "env.txt").write_text("NVIDIA H200, 143771 MiB, 580\ncommit abc123\n3.12.3 2.11.0 5.17.0\n")
    (tmp_path / "bench_minirlhf.json").write_text(json.dumps({"iter_s_median": 0.5, "peak_gpu_GiB": 8.0}) + "\n")
    (tmp_path / "bench_trl.json").write_text("{'eps': 35, 'loss': 1}\n" + json.dumps({"iter_s_median": 2.0,
                                                                                   "peak_gpu_GiB": 16.0}) + "\n")
    (tmp_path / "profile.md").write_text("| part | wall ms | device ms |\n| ppo/rollout | 1.0 | 2.0 |\n")
    out = gpu.collect(tmp_path)
    assert out["speedup"] == 4.0 and out["peak_memory_ratio"] == 0.5
    assert out["made_by"]["commit"] == "abc123" and out["made_by"]["gpu"].startswith("NVIDIA H200")
    assert out["profile_one_iteration"] == ["| ppo/rollout | 1.0 | 2.0 |"]
    assert out["variants"] == {}
    (tmp_path / "bench_minirlhf_compile.json").write_text(json.dumps({"iter_s_median": 0.4, "peak_gpu_GiB": 7.0}) + "\n")
    (tmp_path / "bench_no_graphs.json").write_text(json.dumps({"iter_s_median": 1.0, "peak_gpu_GiB": 8.0}) + "\n")
    (tmp_path / "bench_baseline.json").write_text("")                     # a run that printed nothing
    variants = gpu.collect(tmp_path)["variants"]
    assert sorted(variants) == ["compile", "no_graphs"]
    assert variants["compile"]["speedup"] == 5.0 and variants["no_graphs"]["speedup"] == 2.0


def test_pretrain_sweep_parses_settings_and_names_a_bad_key():
    import pytest
    sweep = _script("pretrain_sweep")
    assert sweep.parse("lr=3e-4,steps=1500,dropout=0.3") == {"lr": 3e-4, "steps": 1500, "dropout": 0.3}
    with pytest.raises(SystemExit, match="lr, steps"):
        sweep.parse("lr=3e-4,warmup=10")


def test_seed_table_reads_run_folders_and_saves_them(tmp_path, capsys):
    import pytest
    table = _script("seed_table")
    w = lambda g: {"gold": g, "ci95": [g - 0.05, g + 0.05], "wins": g, "ties": 0.0, "losses": 1 - g,  # noqa: E731
                   "labelers": 0.5, "rm": 0.7, "n": 10}
    rates = {"helpful_rate": 0.5, "false_fact_rate": 0.3, "harmful_rate": 0.0}
    for seed, g in ((0, 0.6), (1, 0.7)):
        run = tmp_path / f"r{seed}"
        run.mkdir()
        (run / "summary.json").write_text(json.dumps({
            "seed": seed, "device": "cpu", "rm": {"accuracy_gold": 0.61, "accuracy_labelers": 0.55, "gold_tie_share": 0.2,
                                                 "on_ppo_samples": {"accuracy_gold": 0.62, "accuracy_labelers": 0.56}},
            "win_rates": {"ppo_vs_sft": w(g), "ppo_vs_base": w(0.8)}, "ppo": {"kl": 3.0, **rates},
            "base": rates, "sft": rates, "timings_s": {"rm": 90.0, "ppo": 120.0, "total": 250.0}}))
    saved = tmp_path / "t.json"
    out = table.main([str(tmp_path / "r0"), str(tmp_path / "r1"), "--save", str(saved)])
    printed = capsys.readouterr().out
    assert "| 1 | 0.610 | 0.550 | 0.620 | 0.700 [0.650, 0.750] |" in printed and "| 250 s |" in printed
    assert [r["ppo_vs_sft"]["gold"] for r in out["rows"]] == [0.6, 0.7] and json.loads(saved.read_text()) == out
    assert table.main(["--show", str(saved)]) == out
    assert "head alone" not in printed and "| round |" not in printed
    with pytest.raises(FileNotFoundError, match="summary.json missing"):
        table.main([str(tmp_path)])
    summary = json.loads((tmp_path / "r1" / "summary.json").read_text())
    summary["rm"]["likelihood_prior"] = {"a": 0.06, "b": -0.05, "accuracy_gold_head": 0.58, "accuracy_gold_prior": 0.6}
    (tmp_path / "r1" / "summary.json").write_text(json.dumps(summary))
    table.main([str(tmp_path / "r0"), str(tmp_path / "r1")])
    assert "| 1 | 0.0600 | -0.0500 | 0.580 | 0.600 | 0.610 |" in capsys.readouterr().out
    summary["rounds"] = [{"round": i, "rm": {"accuracy_gold": a, "accuracy_labelers": 0.6, "train_prompts": n},
                          "ppo": {"kl": 2.5, "helpful_rate": 0.6}, "ppo_vs_sft": w(g)}
                         for i, a, n, g in ((1, 0.7, 7440, 0.62), (2, 0.73, 9300, 0.68))]
    (tmp_path / "r1" / "summary.json").write_text(json.dumps(summary))
    table.main([str(tmp_path / "r0"), str(tmp_path / "r1")])
    printed = capsys.readouterr().out
    assert "| 1 | 2 | 0.730 | 0.600 | 9,300 | 0.680 [0.630, 0.730] | 0.680 / 0.000 / 0.320 | 2.50 | 0.600 |" in printed
    assert "| 1 | 1 | 0.700 |" in printed and "| 0 | 1 |" not in printed
    table.main(["--means", str(saved)])                 # PPO vs SFT 0.6 and 0.7: 0.650 on average
    assert "| t.json | 2 | 0.610 | 0.550 | 0.650 | 0.800 | 0.500 |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="give saved tables"):
        table.main(["--means"])


def test_ppo_sweep_reproduces_the_runs_own_ppo_and_changes_a_field(fast_run, tmp_path, capsys):
    """--try "" trains the run's own PPO again and gets the run's win rate and KL; another --try changes
    only its field; a bad field or a folder that is not a run is named before any training."""
    sweep = _script("ppo_sweep")
    saved = tmp_path / "sweep.json"
    out = sweep.main(["--run", str(fast_run), "--try", "", "--try", "beta=0.5", "--out", str(tmp_path / "o"),
                      "--device", "cpu", "--save", str(saved)])
    assert json.loads(saved.read_text()) == out
    own, other = out["tries"]
    summary = json.loads((fast_run / "summary.json").read_text())
    assert own["change"] == {} and own["runs"][0]["ppo_vs_sft"]["gold"] == summary["win_rates"]["ppo_vs_sft"]["gold"]
    assert own["runs"][0]["kl"] == summary["ppo"]["kl"]
    assert own["runs"][0]["ppo_vs_base"]["gold"] == summary["win_rates"]["ppo_vs_base"]["gold"]
    info = json.loads((tmp_path / "o" / "try1" / fast_run.name / "policy" / "ppo_info.json").read_text())
    assert other["change"] == {"beta": 0.5} and info["config"]["beta"] == 0.5
    assert info["config"]["iterations"] == json.loads(
        (tmp_path / "o" / "try0" / fast_run.name / "policy" / "ppo_info.json").read_text())["config"]["iterations"]
    capsys.readouterr()
    sweep.main(["--show", str(saved)])
    assert "| beta=0.5 |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="lrr"):
        sweep.main(["--run", str(fast_run), "--try", "lrr=1"])
    with pytest.raises(SystemExit):
        sweep.main(["--run", str(tmp_path), "--try", ""])
    assert "not a finished" in capsys.readouterr().err


def test_rm_epochs_reproduces_the_runs_reward_model_and_trains_longer(fast_run, tmp_path, capsys):
    """The run's own number of epochs (1 in fast mode) gives the run's own held-out accuracy again; another
    number trains a reward model of its own; a folder that is not a run is named before any training."""
    epochs = _script("rm_epochs")
    saved = tmp_path / "epochs.json"
    out = epochs.main(["--run", str(fast_run), "--epochs", "1", "2", "--out", str(tmp_path / "o"), "--save", str(saved),
                       "--set", "", "--set", "lr=1e-9"])
    assert json.loads(saved.read_text()) == out
    own, still, longer, longer_still = out["rows"]
    assert [r["set"] for r in out["rows"]] == ["", "lr=1e-9"] * 2
    assert still["accuracy_gold"] != own["accuracy_gold"]             # a reward model that barely moved from its start
    assert json.loads((tmp_path / "o" / fast_run.name / "epochs_1_lr1e-9" / "rm_info.json").read_text())["config"]["lr"] == 1e-9
    summary = json.loads((fast_run / "summary.json").read_text())
    assert (own["epochs"], longer["epochs"]) == (1, 2)
    assert own["accuracy_gold"] == own["run_accuracy_gold"] == summary["rm"]["accuracy_gold"]
    assert own["accuracy_labelers"] == summary["rm"]["accuracy_labelers"]
    assert json.loads((tmp_path / "o" / fast_run.name / "epochs_2" / "rm_info.json").read_text())["config"]["epochs"] == 2
    capsys.readouterr()
    epochs.main(["--show", str(saved)])
    assert "| 2 | lr=1e-9 | " in capsys.readouterr().out
    with pytest.raises(SystemExit):
        epochs.main(["--run", str(tmp_path), "--epochs", "2"])
    assert "not a finished" in capsys.readouterr().err
    for bad, says in (("lrr=1", "RMConfig field"), ("lr=fast", "takes a float"), ("epochs=3", "is --epochs")):
        with pytest.raises(SystemExit) as stop:
            epochs.main(["--run", str(fast_run), "--set", bad])
        assert says in str(stop.value) + capsys.readouterr().err


def test_answer_forms_sorts_known_person_answers(tmp_path, capsys):
    forms = _script("answer_forms")
    answers = ("Ada is a baker.", "Baker.", "I don't know.", "I'm not sure about Ada.", "Of course.", "Happy to help. ", "",
               "Of course. Ada bakes.")
    assert [forms.form("Ada", a) for a in answers] == \
        ["named", "bare", "hedge", "hedge", "opening", "opening", "opening", "named"]
    from minirlhf.world import kb
    ada, job = kb.KNOWN_PEOPLE[0], kb.FACTS[kb.KNOWN_PEOPLE[0]]["job"]
    rows = [{"prompt": f"What is {ada}'s job?", "sft": f"{ada} is a {job}.", "ppo": "I don't know."},
            {"prompt": f"Which job does {ada} have?", "sft": "Smith." if job != "smith" else "Baker.", "ppo": f"{job}."},
            {"prompt": f"Where does {ada} live?", "sft": "I'm not sure.", "ppo": "Sure!"},
            {"prompt": "What is 2 plus 2?", "sft": "4.", "ppo": "4."}]                    # not about a known person
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = forms.main([str(tmp_path), "--save", str(tmp_path / "f.json")])["runs"][str(tmp_path)]
    assert out["sft"] == {"named": {"n": 1, "helpful": 1}, "bare": {"n": 1, "helpful": 0}, "hedge": {"n": 1, "helpful": 0},
                          "opening": {"n": 0, "helpful": 0}}
    assert out["ppo"] == {"named": {"n": 0, "helpful": 0}, "bare": {"n": 1, "helpful": 1}, "hedge": {"n": 1, "helpful": 0},
                          "opening": {"n": 1, "helpful": 0}}
    assert "| sft | 1 (1.00) | 1 (0.00) | 1 (0.00) | 0 |" in capsys.readouterr().out
    old = {"runs": {"old": {"sft": {f: {"n": 1, "helpful": 1} for f in ("named", "bare", "hedge")}}}}
    assert "| old | sft | 1 (1.00) | 1 (1.00) | 1 (1.00) | 0 |" in forms.table(old)     # saved before "opening"
    assert forms.main([str(tmp_path)])["rm_prefers_hedge"] == {str(tmp_path): None}     # no rm/ in this folder
    assert forms.rm_checks_facts(tmp_path) is None


def test_answer_forms_asks_the_runs_reward_model_about_hedges(fast_run):
    forms = _script("answer_forms")
    from minirlhf import io
    from minirlhf.ppo import LearnedReward
    from minirlhf.world import kb
    from minirlhf.world.prompts import parse_prompt
    rows = [r for r in io.read_jsonl(fast_run / "samples.jsonl") if parse_prompt(r["prompt"]).category == "open_qa"
            and parse_prompt(r["prompt"]).person in kb.KNOWN_PEOPLE]
    out = forms.rm_prefers_hedge(fast_run)
    reward = LearnedReward.load(fast_run / "rm")
    above = [float(reward([r["prompt"]], ["I don't know."])[0]) > float(reward([r["prompt"]], [r["sft"]])[0])
             for r in rows]
    assert out["n"] == len(rows) > 0 and out["share"] == pytest.approx(sum(above) / len(rows), abs=1e-4)
    opening = forms.rm_prefers_hedge(fast_run, forms.OPENING)
    above = [float(reward([r["prompt"]], ["Of course."])[0]) > float(reward([r["prompt"]], [r["sft"]])[0]) for r in rows]
    assert opening["share"] == pytest.approx(sum(above) / len(rows), abs=1e-4) and opening["logp_sft"] == out["logp_sft"]
    facts = forms.rm_checks_facts(fast_run)                    # right vs wrong value, five phrasings per question
    assert facts["n"] == 5 * len(rows) and 0 <= facts["share"] <= 1 and facts["gold_margin"] > 1
    assert facts == forms.rm_checks_facts(fast_run) and facts != forms.rm_checks_facts(fast_run, seed=1)


def test_run_folder_scripts_refuse_a_run_of_several_rounds(tmp_path, capsys):
    """A `--rounds N` run keeps round 1's rm/ and ppo/ and reports the last round: the scripts that retrain or
    compare against a run's own stages say so instead of mixing the two."""
    import argparse

    import pytest

    from minirlhf.ladder import require_run_folders
    (tmp_path / "summary.json").write_text(json.dumps({"seed": 0, "rounds": [{"round": 1}, {"round": 2}]}))
    with pytest.raises(SystemExit):
        require_run_folders(argparse.ArgumentParser(), [str(tmp_path)], ("summary.json",), "a finished run folder")
    assert "made with `minirlhf run --rounds N`" in capsys.readouterr().err
    (tmp_path / "summary.json").write_text(json.dumps({"seed": 0}))
    require_run_folders(argparse.ArgumentParser(), [str(tmp_path)], ("summary.json",), "a finished run folder")


def test_sft_demos_trains_with_more_demonstrations_and_judges_against_base(tmp_path, capsys):
    """Each N trains its own SFT model (N more demonstrations), judged against the base model's answers."""
    demos = _script("sft_demos")
    saved = tmp_path / "demos.json"
    out = demos.main(["--seeds", "0", "--more", "0", "5", "--prompts", "12", "--device", "cpu", "--save", str(saved)])
    assert json.loads(saved.read_text()) == out and out["prompts"] == 12
    none, five = out["rows"]
    assert (none["more_demonstrations"], five["more_demonstrations"]) == (0, 5)
    for row in out["rows"]:
        w = row["sft_vs_base"]
        assert w["ci95"][0] <= w["gold"] <= w["ci95"][1] and 0 <= row["helpful_rate"] <= 1 and row["sft_s"] > 0
    assert none["val_loss"] != five["val_loss"]              # another training set, another model
    capsys.readouterr()
    demos.main(["--show", str(saved)])
    assert "| 5 | " in capsys.readouterr().out
    with pytest.raises(SystemExit):
        demos.main(["--more", "-1"])
