"""The ladder's analysis (Figure 1 in miniature, the headline) on constructed judgements."""
import json

import pytest

import minirlhf.ladder as ladder
from minirlhf import plots


def _rung(size, params, seed, u, n=40):
    """A rung whose models' gold utilities are given per model (constant over prompts)."""
    prompts = [f"p{i}" for i in range(n)]
    rates = {m: {"helpful_rate": 0.1 * i, "false_fact_rate": 0.2, "harmful_rate": 0.0, "gold_utility_mean": u[m]}
             for i, m in enumerate(u)}
    return {"size": size, "seed": seed, "params": params, "prompts": prompts,
            "responses": {m: [f"{m}-{i}" for i in range(n)] for m in u}, "_u": u, "rates": rates,
            "corpus_loss": {m: 1.0 + 0.1 * i for i, m in enumerate(u)}, "pretrain": {"val_loss": 0.5},
            "rm": {"accuracy_gold": 0.6}, "timings_s": {"rung_total": 10.0}}


@pytest.fixture
def constant_utilities(monkeypatch):
    monkeypatch.setattr(ladder, "_utilities", lambda r: {m: [r["_u"][m]] * len(r["prompts"]) for m in r["responses"]})


def test_figure1_and_headline_on_known_answers(constant_utilities):
    small = {"base": -1.0, "sft": 0.0, "ppo": 1.0, "ppo_ptx": 1.0}
    large = {"base": -0.5, "sft": 0.5, "ppo": 0.5, "ppo_ptx": 0.2}
    rungs = [_rung("tiny", 1_000, s, small) for s in (0, 1)] + [_rung("large", 30_000, s, large) for s in (0, 1)]
    a = ladder.analyse(rungs, tau=0.1)
    assert a["baseline"] == "large sft" and list(a["sizes"]) == ["tiny", "large"]
    f = a["figure1"]
    assert f["sft"]["large"]["gold"] == 0.5 and f["sft"]["large"]["ci95"] == [0.5, 0.5]   # the baseline itself
    assert f["ppo"]["large"]["gold"] == 0.5                                              # equal utilities: ties
    assert f["ppo"]["tiny"]["gold"] == 1.0 and f["base"]["tiny"]["gold"] == 0.0
    assert f["ppo_ptx"]["large"]["gold"] == 0.0 and f["ppo"]["tiny"]["n"] == 80           # pooled over 2 seeds
    h = a["headline"]
    assert h["tiny_ppo_vs_large_sft"]["gold"] == 1.0 and h["tiny_ppo_vs_large_base"]["gold"] == 1.0
    assert h["large_sft_vs_tiny_sft"]["gold"] == 1.0          # the fairness check: larger SFT beats smaller
    assert a["table"]["tiny"]["ppo"]["corpus_loss"] == pytest.approx(1.2)
    assert a["sizes"]["tiny"]["ppo_vs_own_sft"]["gold"] == 1.0
    lines = ladder.headline_lines(a)
    assert any("tiny ppo vs large sft: gold win rate 1.000" in line and "holds" in line for line in lines)
    assert a["fair_size"] == "large" and "fairness: large (30.0x the parameters)" in lines[-1]
    fig = plots.ladder(a)
    assert len(fig.axes) == 2


def test_headline_also_at_the_largest_size_whose_sft_beats_the_smallest(constant_utilities):
    u = {"tiny": {"base": -1.0, "sft": 0.0, "ppo": 0.5, "ppo_ptx": 0.5},
         "small": {"base": -0.5, "sft": 1.0, "ppo": 1.0, "ppo_ptx": 1.0},     # its SFT beats tiny's
         "large": {"base": -0.5, "sft": -0.2, "ppo": 0.0, "ppo_ptx": 0.0}}    # its SFT does not
    rungs = [_rung(size, params, 0, u[size]) for size, params in (("tiny", 1), ("small", 5), ("large", 40))]
    a = ladder.analyse(rungs, tau=0.1)
    h = a["headline"]
    assert a["fair_size"] == "small" and h["large_sft_vs_tiny_sft"]["gold"] == 0.0
    assert h["small_sft_vs_tiny_sft"]["gold"] == 1.0
    assert h["tiny_ppo_vs_large_sft"]["gold"] == 1.0 and h["tiny_ppo_vs_small_sft"]["gold"] == 0.0
    assert h["tiny_ppo_vs_small_base"]["gold"] == 1.0
    lines = ladder.headline_lines(a)
    assert any("tiny ppo vs small sft: gold win rate 0.000" in line and "does not hold" in line for line in lines)
    assert "fairness: small (5.0x the parameters) is the largest size" in lines[-2]
    assert a["by_size"]["small"] == {"fair_size": None, "comparisons": {}}       # large SFT loses to small SFT too
    assert lines[-1] == "small: no larger SFT model beats the small SFT model on gold"
    only_worse = ladder.analyse([rungs[0], rungs[2]], tau=0.1)
    assert only_worse["fair_size"] is None and "no larger SFT" in ladder.headline_lines(only_worse)[-1]
    one_size = ladder.analyse([rungs[1]], tau=0.1)                       # a ladder of one rung (e.g. a CPU part)
    assert one_size["fair_size"] is None and one_size["headline"]["small_sft_vs_small_sft"]["gold"] == 0.5


def test_each_middle_size_at_its_own_largest_fair_gap(constant_utilities):
    u = {"nano": {"base": -1.0, "sft": -0.5, "ppo": 0.0, "ppo_ptx": 0.0},
         "tiny": {"base": -1.0, "sft": 0.0, "ppo": 0.5, "ppo_ptx": 0.5},
         "small": {"base": -0.5, "sft": 1.0, "ppo": 1.0, "ppo_ptx": 1.0},     # its SFT beats nano's and tiny's
         "large": {"base": -0.5, "sft": -0.2, "ppo": 0.0, "ppo_ptx": 0.0}}    # beats nano's SFT only
    sizes = (("nano", 1), ("tiny", 7), ("small", 36), ("large", 270))
    a = ladder.analyse([_rung(size, params, 0, u[size]) for size, params in sizes], tau=0.1)
    assert a["fair_size"] == "large" and a["headline"]["large_sft_vs_nano_sft"]["gold"] == 1.0
    assert a["headline"]["nano_ppo_vs_large_sft"]["gold"] == 1.0 and "nano_ppo_vs_small_sft" not in a["headline"]
    assert list(a["by_size"]) == ["tiny", "small"]
    tiny = a["by_size"]["tiny"]
    assert tiny["fair_size"] == "small" and tiny["comparisons"]["small_sft_vs_tiny_sft"]["gold"] == 1.0
    assert tiny["comparisons"]["tiny_ppo_vs_small_sft"]["gold"] == 0.0
    assert tiny["comparisons"]["tiny_ppo_ptx_vs_small_base"]["gold"] == 1.0
    assert a["by_size"]["small"]["fair_size"] is None
    lines = ladder.headline_lines(a)
    assert "fairness: large (270.0x the parameters)" in lines[5]
    assert any(line.startswith("tiny at its largest fair gap (small, 5.1x): tiny ppo vs small sft: gold win rate 0.000")
               and line.endswith("does not hold") for line in lines)


def test_missing_ppo_ptx_is_left_out_and_merge_prefers_later_files(constant_utilities, tmp_path):
    full = {"base": -1.0, "sft": 0.0, "ppo": 1.0, "ppo_ptx": 1.0}
    partial = {"base": -1.0, "sft": 0.2, "ppo": 0.4}                    # PPO-ptx missed its deadline
    a = ladder.analyse([_rung("tiny", 1, 0, full), _rung("large", 9, 0, partial)], tau=0.1)
    assert a["models"] == list(ladder.MODELS) and list(a["figure1"]["ppo_ptx"]) == ["tiny"]   # only where it ran
    assert "ppo_ptx" not in a["table"]["large"] and a["sizes"]["large"]["ppo_ptx_vs_own_sft"] is None
    assert "PPO-ptx" in [t.get_text() for t in plots.ladder(a).axes[0].get_legend().get_texts()]
    assert "| ppo_ptx | " in ladder.report({"made_by": {}, "rungs": [], "analysis": a})
    first = {"made_by": {"commit": "a"}, "pretrain": {}, "rungs": [_rung("tiny", 1, 0, full), _rung("large", 9, 0, partial)]}
    second = {"made_by": {"commit": "b"}, "pretrain": {"large": {"val_loss": 0.5}}, "rungs": [_rung("large", 9, 0, full)]}
    for name, obj in (("1.json", first), ("2.json", second)):
        (tmp_path / name).write_text(json.dumps(obj))
    merged = ladder.merge([tmp_path / "1.json", tmp_path / "2.json"], tmp_path / "out.json")
    assert [m["commit"] for m in merged["made_by"]] == ["a", "b"] and len(merged["rungs"]) == 2
    assert list(merged["analysis"]["figure1"]["ppo_ptx"]) == ["tiny", "large"]   # the later, complete rung won
    assert json.loads((tmp_path / "out.json").read_text())["analysis"]["baseline"] == "large sft"
    (tmp_path / "3.json").write_text(json.dumps({"made_by": {"commit": "c"}, "rungs": [_rung("tiny", 1, 1, full)]}))
    again = ladder.merge([tmp_path / "3.json", tmp_path / "out.json"])          # a merged file merged again
    assert [m["commit"] for m in again["made_by"]] == ["c", "a", "b"]
    assert {(r["size"], r["seed"]): again["made_by"][r["made_by"]]["commit"] for r in again["rungs"]} == {
        ("tiny", 1): "c", ("tiny", 0): "a", ("large", 0): "b"}                 # each rung keeps its maker
    stale = json.loads((tmp_path / "out.json").read_text()) | {"analysis": {"old": True}}
    (tmp_path / "out.json").write_text(json.dumps(stale))
    ladder.cli(["--analyse", str(tmp_path / "out.json")])                       # reads only
    assert json.loads((tmp_path / "out.json").read_text())["analysis"] == {"old": True}
    ladder.cli(["--analyse", str(tmp_path / "out.json"), "--update"])
    assert json.loads((tmp_path / "out.json").read_text())["analysis"]["baseline"] == "large sft"   # fresh


def test_analyse_needs_rungs():
    with pytest.raises(ValueError, match="no rungs"):
        ladder.analyse([], tau=0.1)


def test_larger_rungs_fine_tune_at_their_pretraining_lr(tmp_path):
    """run.lr_scale: SFT, RM and PPO learning rates follow the base's pretraining lr relative to
    tiny's (the defaults' reference); a model without pretrain_info.json keeps the defaults."""
    import json
    from minirlhf.paths import base_model_dir
    from minirlhf.run import base_info, lr_scale
    assert lr_scale(base_info(base_model_dir("tiny"))) == 1.0
    (tmp_path / "pretrain_info.json").write_text(json.dumps({"lr": 3e-4}))
    assert abs(lr_scale(base_info(tmp_path)) - 0.15) < 1e-12
    assert lr_scale(base_info(tmp_path / "nothing")) == 1.0
    assert lr_scale(base_info("HuggingFaceTB/SmolLM2-135M-Instruct")) == 1.0


def test_code_commit_says_when_the_code_differs(tmp_path, monkeypatch):
    import shutil
    import subprocess
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    monkeypatch.delenv("MINIRLHF_COMMIT", raising=False)
    run = lambda *a: subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=tmp_path,  # noqa: E731
                                    check=True, capture_output=True, text=True).stdout.strip()
    run("init", "-q")
    for folder in ("minirlhf", "docs"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "f.txt").write_text("a")
    run("add", ".")
    run("commit", "-qm", "one")
    sha = run("rev-parse", "HEAD")
    (tmp_path / "minirlhf" / "new.txt").write_text("untracked files do not count")
    (tmp_path / "docs" / "f.txt").write_text("nor do docs")
    assert ladder.code_commit(tmp_path / "docs") == sha
    (tmp_path / "minirlhf" / "f.txt").write_text("b")
    assert ladder.code_commit(tmp_path / "docs") == sha + "+dirty"
    monkeypatch.setenv("MINIRLHF_COMMIT", "abc")
    assert ladder.code_commit(tmp_path) == "abc"
