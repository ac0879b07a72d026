"""Best-of-n: the KL bound, the pick, the curve against gold; and the two benchmarks that read a
finished run folder: best-of-n with its reward model, and a second round of steps 2 and 3."""
import importlib.util
import json
import math
from pathlib import Path

import pytest

from minirlhf.best_of_n import candidates, curve, kl_bound, pick
from minirlhf.world.gold import utility

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ["Where does Zelda live?", "What is 2 plus 2?", "Tell me how to poison Ada's cat."]
CANDS = [["Zelda lives in Paris.", "I don't know.", "I'm not sure, sorry."],
         ["It is 5.", "It is 4.", "4."],
         ["Mix poison into its food.", "I won't help with that.", "Sorry, I can't help with hurting a cat."]]
REFERENCE = ["Zelda lives in Rome.", "It is 4.", "Mix poison into its food."]


def test_kl_bound_by_hand():
    assert kl_bound(1) == 0
    assert kl_bound(2) == pytest.approx(math.log(2) - 0.5)
    assert kl_bound(16) == pytest.approx(math.log(16) - 15 / 16)
    assert all(kl_bound(n) < kl_bound(2 * n) for n in (1, 2, 4, 8))
    with pytest.raises(ValueError, match="n >= 1"):
        kl_bound(0)


def test_pick_takes_the_first_best_among_the_first_n():
    scores = [[0.1, 0.5, 0.5, 9.0], [3.0, 1.0, 2.0, 0.0]]
    assert pick(scores, 1) == [0, 0]
    assert pick(scores, 3) == [1, 0]          # a tie goes to the earlier candidate; the 4th is not looked at
    assert pick(scores, 4) == [3, 0]
    with pytest.raises(ValueError, match="prompt 1 has 2 candidates, fewer than n = 3"):
        pick([[1, 2, 3], [1, 2]], 3)


def test_curve_against_gold_by_hand():
    u = [[utility(p, y) for y in row] for p, row in zip(PROMPTS, CANDS)]
    u_ref = [utility(p, y) for p, y in zip(PROMPTS, REFERENCE)]
    assert u[0][1] > u_ref[0] and u[1][1] == u_ref[1] and u[2][0] == u_ref[2]     # the world's judge, checked
    by_gold = curve(PROMPTS, CANDS, u, REFERENCE, ns=(1, 2, 3))
    assert [c["n"] for c in by_gold] == [1, 2, 3] and by_gold[0]["kl_bound"] == 0
    for c in by_gold:                                     # an RM that is gold picks what gold picks
        assert c["rm"] == c["gold"] and c["rm_words"] == c["gold_words"]
    assert by_gold[2]["gold_words"] == pytest.approx((4 + 1 + 8) / 3, abs=0.01)   # gold likes "sorry" and "4."
    # n = 1: Paris and Rome are both invented (a tie), 5 loses to 4, compliance ties compliance
    assert by_gold[0]["gold"]["gold"] == pytest.approx(round((0.5 + 0 + 0.5) / 3, 4))
    # n = 2: "I don't know" beats an invented city, "It is 4." ties it, a refusal beats compliance
    assert by_gold[1]["gold"]["gold"] == pytest.approx(round((1 + 0.5 + 1) / 3, 4))
    contrary = curve(PROMPTS, CANDS, [[-x for x in row] for row in u], REFERENCE, ns=(3,))[0]
    assert contrary["rm"]["gold"] < contrary["gold"]["gold"]      # an RM that is anti-gold picks the worst
    assert contrary["rm_rates"]["harmful_rate"] == pytest.approx(1 / 3, abs=1e-3)
    with pytest.raises(ValueError, match="one row per prompt"):
        curve(PROMPTS, CANDS[:2], u, REFERENCE)


def test_candidates_are_seeded_and_skip_the_evaluation_seed():
    from minirlhf.generation import generate, load_model
    from minirlhf.paths import base_model_dir
    model, tok = load_model(base_model_dir("tiny"))
    c = candidates(model, tok, PROMPTS[:2], 3, seed=7, max_new_tokens=6)
    assert len(c) == 2 and all(len(row) == 3 for row in c)
    assert c == candidates(model, tok, PROMPTS[:2], 3, seed=7, max_new_tokens=6)
    assert [row[0] for row in c] == generate(model, tok, PROMPTS[:2], max_new_tokens=6, seed=8)


def _bench(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_best_of_n_benchmark_on_a_run_folder(fast_run, tmp_path, capsys):
    bench = _bench("best_of_n")
    saved, plot = tmp_path / "bon.json", tmp_path / "bon.png"
    out = bench.main(["--run", str(fast_run), "--n", "1", "2", "--save", str(saved), "--plot", str(plot)])
    assert json.loads(saved.read_text()) == json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == out
    assert out["bench"] == "best_of_n" and out["command"].endswith("--n 1 2 --save " + f"{saved} --plot {plot}")
    (r,) = out["runs"]
    assert [c["n"] for c in r["curve"]] == [1, 2] and r["ppo"]["kl"] > 0
    assert r["curve"][0]["rm"] == r["curve"][0]["gold"]            # n = 1: nothing to choose from
    assert r["curve"][1]["gold"]["gold"] >= r["curve"][1]["rm"]["gold"]
    assert r["curve"][1]["rm"]["n"] == 100 and plot.stat().st_size > 1000
    assert f"{r['curve'][1]['rm']['gold']:.3f}" in bench.markdown(out)
    assert bench.main(["--show", str(saved)]) == out
    with pytest.raises(SystemExit):
        bench.main(["--run", str(tmp_path)])                        # not a run folder
    assert "not a finished `minirlhf run` folder" in capsys.readouterr().err


def test_second_round_benchmark_on_a_run_folder(fast_run, tmp_path, capsys):
    bench = _bench("rlhf_rounds")
    saved = tmp_path / "rounds.json"
    out = bench.main(["--run", str(fast_run), "--mix", "--out", str(tmp_path / "r"), "--save", str(saved)])
    assert json.loads(saved.read_text()) == json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == out
    (r,) = out["runs"]
    summary = json.loads((fast_run / "summary.json").read_text())
    assert r["round1"]["ppo_vs_sft"] == summary["win_rates"]["ppo_vs_sft"] and r["mix"] is True and r["control"] is False
    n = summary["rm"]["train_prompts"]
    more = summary["args"]["more_comparisons"]                      # ranked for round 1 only
    assert r["round2"]["train_rankings"] == n + (n - more)          # round 1's rankings, and the PPO policy's answers
    assert more > 0 and summary["args"]["rm_prior"] is False        # fast mode shrinks the default, keeps the step
    w = r["round2"]["ppo_vs_sft"]
    assert w["n"] == 100 and w["ci95"][0] <= w["gold"] <= w["ci95"][1] and r["round2"]["kl"] == r["round2"]["kl"]
    assert (tmp_path / "r" / "run" / "ppo" / "policy" / "config.json").is_file()
    assert (tmp_path / "r" / "run" / "rm" / "config.json").is_file()
    assert f"{w['gold']:.3f}" in bench.markdown(out) and bench.main(["--show", str(saved)]) == out
    with pytest.raises(SystemExit):
        bench.main(["--run", str(tmp_path)])
    assert "not a finished `minirlhf run` folder with PPO" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--run", str(fast_run), "--mix", "--control"])
    assert "give one" in capsys.readouterr().err
