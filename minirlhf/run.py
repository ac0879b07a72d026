"""The main job, ``minirlhf run``: every stage built so far, written to one run folder.

Stages: the world (its labelers' calibration), the pretrained base model judged by the
gold preference, SFT on the labelers' demonstrations, the reward model on K-way rankings
of SFT samples, PPO against the learned reward model (never the gold), and the evaluation
(judge rates, KL and win rates). The folder holds
CONTRACT's ``summary.json``, ``metrics.jsonl``, ``report.md`` and ``plots/*.png``;
stages that do not exist yet are absent.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from tqdm.auto import tqdm

from . import io, plots
from .evaluate import judged_win_rate
from .judge import EVAL_MAX_NEW_TOKENS, EVAL_TEMPERATURE, eval_prompts, rates
from .paths import base_model_dir, world_dir
from .settings import Settings, get_settings

STAGES = ("world", "base", "sft", "rm", "ppo", "eval")
# The reward model's data for the world's own models (docs/reward_model.md, "Twice the ranked prompts": 13,020 more
# make 14,880 training prompts, half the paper's ~33k; seeds 0-2 on 2 CPU cores, RM vs labelers and vs gold up from
# 5,580 more, for ~1.7x the run's time). Other models (--model) rank the world's file alone: their sampling would
# take hours on a CPU.
MORE_COMPARISONS = 13020      # more ranked prompts: 7x the world's 1,860 (the paper ranked ~33k)
MORE_COMPARISONS_EPOCHS = 4   # the reward model's epochs on them: on seed 1, 4 gave 0.855 vs gold and 0.696 vs
                              # labelers, 6 gave 0.862 and 0.691 in 1.5x the time (benchmarks/rm_epochs.py)
MORE_COMPARISONS_BETA = 0.15  # PPO's KL weight against that sharper reward model: on seed 0 beta 0.1 let PPO repeat
                              # items the RM likes (PPO over SFT 0.654, over base 0.849); 0.15 gave 0.727 and 0.888
                              # (benchmarks/ppo_sweep.py, docs/reward_model.md)
FAST_MORE_COMPARISONS = 40    # fast mode keeps the step and shrinks it
# More demonstrations for the world's own models (docs/sft.md: SFT helpful 0.68 -> 0.87, seeds 0-2): the paper's ~13k
# demonstration prompts were 0.4 of its ~33k ranked ones; 1,860 more made the world's 980 about 0.4 of the
# 7,440 prompts once ranked here, 0.19 of today's 14,880 (docs/sft.md). Other models (--model) train on the
# world's file alone, as for the comparisons.
MORE_DEMONSTRATIONS = 1860
FAST_MORE_DEMONSTRATIONS = 40
ROUNDS = 1                    # steps 2 and 3 once, as the paper's figure 2; `--rounds N` iterates them (section 3.1)
RM_PRIOR = False              # RMConfig.likelihood_prior (not the paper's): +0.026 RM vs gold on top of the 4x
                              # prompts, but PPO over SFT 0.640 instead of 0.646 (same section)


def configs_of(summary: dict, device: str):
    """The SFT, RM and PPO settings `minirlhf run` used for the run of this ``summary`` (its seed and
    fast mode, its extra demonstrations, its reward model's extra comparisons and prior) on ``device``: what a
    benchmark that trains a run's stages again starts from."""
    settings = get_settings(fast=bool(summary.get("fast")), device=device, seed=summary["seed"])
    return _with_run_args(summary.get("args", {}), *_stage_configs(settings))


def _with_run_args(args: dict, sft, rm, ppo):
    """The stage configs with a run's ``summary["args"]`` applied: its extra demonstrations and comparisons,
    its reward model's epochs, shared prompts and prior, and PPO's KL weight (where the run set them)."""
    sft.more_demonstrations = args.get("more_demonstrations") or 0
    rm.epochs = args.get("rm_epochs") or rm.epochs
    rm.more_prompts, rm.likelihood_prior = args.get("more_comparisons") or 0, bool(args.get("rm_prior"))
    rm.share_prompts = bool(args.get("share_prompts"))
    ppo.beta = ppo.beta if args.get("beta") is None else args["beta"]
    return sft, rm, ppo


def comparisons_settings(more_comparisons: int, rm_epochs: int | None, beta: float | None,
                         fast: bool) -> tuple[int | None, float | None, bool]:
    """``(rm_epochs, beta, share_prompts)`` for a run ranking ``more_comparisons`` more prompts: with
    ``MORE_COMPARISONS`` or more outside fast mode, the sharper reward model trains ``MORE_COMPARISONS_EPOCHS``
    epochs computing each prompt once, and PPO holds its policy at ``MORE_COMPARISONS_BETA``. A given
    ``rm_epochs`` or ``beta`` wins; None leaves RMConfig's and PPOConfig's own."""
    many = more_comparisons >= MORE_COMPARISONS and not fast
    return (MORE_COMPARISONS_EPOCHS if rm_epochs is None and many else rm_epochs,
            MORE_COMPARISONS_BETA if beta is None and many else beta, many)


def _stage_configs(settings: Settings):
    """SFT, RM and PPO settings for this machine: smaller in fast mode (same steps, less work)."""
    from .ppo import PPOConfig
    from .reward import RMConfig
    from .sft import SFTConfig
    sft = SFTConfig(seed=settings.seed, device=settings.device)
    rm = RMConfig(seed=settings.seed, device=settings.device)
    ppo = PPOConfig(seed=settings.seed, device=settings.device)
    if settings.fast:
        sft.epochs, rm.epochs, rm.max_prompts = 1, 1, 400
        ppo.iterations, ppo.batch_size, ppo.mini_batch_size, ppo.ppo_epochs = 3, 16, 8, 2
    return sft, rm, ppo


def _samples(model, tokenizer, prompts: list[str], seed: int) -> list[str]:
    from .generation import generate
    return generate(model, tokenizer, prompts, max_new_tokens=EVAL_MAX_NEW_TOKENS, temperature=EVAL_TEMPERATURE,
                    seed=seed)


def _report(out: Path, summary: dict, base_info: dict, samples: list[dict], figures: dict[str, str]) -> Path:
    """``report.md``: the run's tables and plots, produced from its own numbers."""
    lab = summary["world"]["labelers"]
    rate_cols = ("helpful_rate", "false_fact_rate", "harmful_rate", "more_questions_rate", "gold_utility_mean")
    lines = [
        "# minirlhf run report", "",
        f"seed {summary['seed']} · device `{summary['device']}` · fast={summary['fast']} · "
        f"total {summary['timings_s']['total']:.1f} s "
        f"({', '.join(f'{k} {v:.1f} s' for k, v in summary['timings_s'].items() if k != 'total')})", "",
        "## The world's labelers", "",
        "| tau | labeler–labeler agreement | labeler–gold agreement | gold tie share |", "|---|---|---|---|",
        f"| {lab['tau']} | {lab['labeler_labeler_agreement_fresh']:.3f} | "
        f"{lab['labeler_gold_agreement_fresh']['all']:.3f} | {lab['labeler_gold_agreement_fresh']['gold_tie_share']:.3f} |",
        "", "## The base model", "",
        "| parameters | tokens seen | held-out corpus loss | pretraining time | device |", "|---|---|---|---|---|",
        f"| {base_info.get('params', 0):,} | {base_info.get('tokens_seen', 0):,} | "
        f"{base_info.get('val_loss', float('nan')):.3f} | {base_info.get('seconds', float('nan')):.0f} s | "
        f"{base_info.get('device', '?')} |",
        "", "## Gold judge rates on held-out prompts", "",
        "| model | n | helpful | false fact | harmful | more questions | mean gold utility |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("base", "sft", "ppo"):
        if name in summary:
            r = summary[name]
            lines.append(f"| {name} | {r['n']} | " + " | ".join(f"{r[k]:.3f}" for k in rate_cols) + " |")
    if "rm" in summary:
        rm = summary["rm"]
        lines += ["", "## Reward model (held-out comparisons)", "",
                  "| accuracy vs labelers | accuracy vs gold (non-tied) | gold tie share | margin | pairs | "
                  "labelers' tau | labeler–labeler | labeler–gold (non-tied) |",
                  "|---|---|---|---|---|---|---|---|",
                  f"| {rm['accuracy_labelers']:.3f} | {rm['accuracy_gold']:.3f} | {rm['gold_tie_share']:.3f} | "
                  f"{rm['margin']:.3f} | {rm['n_pairs']} | {rm.get('labelers_tau', float('nan')):.3f} | "
                  f"{rm.get('labeler_labeler_agreement', float('nan')):.3f} | "
                  f"{rm.get('labeler_gold_agreement', float('nan')):.3f} |"]
        if "train_prompts" in rm:
            lines += ["", f"Trained on the labelers' rankings of {rm['train_prompts']:,} prompts" + (
                f" (round {rm['round']}'s reward model: every round's rankings)." if "round" in rm else ".")]
        if "likelihood_prior" in rm:
            q = rm["likelihood_prior"]
            lines += ["", f"The reward is the head plus a likelihood prior, {q['a']:.4f} * log pi_SFT(y|x) "
                          f"{q['b']:+.4f} * |y| (`--rm-prior`); against gold, the head alone gets "
                          f"{q['accuracy_gold_head']:.3f} and the prior alone {q['accuracy_gold_prior']:.3f}."]
        if "rm_model" in summary:
            r = summary["rm_model"]
            lines += ["", f"The reward model started from its own base, `{r['base']}`, fine-tuned on the demonstrations "
                          f"first (`{r['sft']}`, lr {r['lr']['sft']:.2g}; RM lr {r['lr']['rm']:.2g})."]
        if "on_ppo_samples" in rm:
            p = rm["on_ppo_samples"]
            lines += ["", f"On the PPO policy's answers to the same held-out prompts ({p['n_pairs']} pairs, gold ties "
                          f"{p['gold_tie_share']:.3f}): accuracy vs labelers {p['accuracy_labelers']:.3f}, vs gold "
                          f"(non-tied) {p['accuracy_gold']:.3f}, against {rm['accuracy_gold']:.3f} on the SFT answers it "
                          "was trained on."]
    if summary.get("rounds"):
        lines += ["", "## Rounds of steps 2 and 3", "",
                  "Each round after the first ranks the last policy's answers beside new SFT samples and trains a new "
                  "reward model and a new policy from the SFT model (the paper, section 3.1). The tables above are the "
                  "last round's.", "",
                  "| round | RM vs gold | RM vs labelers | ranked prompts | PPO vs SFT (gold) | 95% CI | KL | helpful |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in summary["rounds"]:
            w = r["ppo_vs_sft"]
            lines.append(f"| {r['round']} | {r['rm']['accuracy_gold']:.3f} | {r['rm']['accuracy_labelers']:.3f} | "
                         f"{r['rm']['train_prompts']:,} | {w['gold']:.3f} | [{w['ci95'][0]:.3f}, {w['ci95'][1]:.3f}] | "
                         f"{r['ppo']['kl']:.2f} | {r['ppo']['helpful_rate']:.3f} |")
    if summary.get("win_rates"):
        lines += ["", "## Win rates (ties count 1/2)", "",
                  "| comparison | gold | 95% CI | wins | ties | losses | labelers | RM | n |", "|---|---|---|---|---|---|---|---|---|"]
        for name, w in summary["win_rates"].items():
            lines.append(f"| {name} | {w['gold']:.3f} | [{w['ci95'][0]:.3f}, {w['ci95'][1]:.3f}] | {w['wins']:.3f} | "
                         f"{w['ties']:.3f} | {w['losses']:.3f} | {w.get('labelers', float('nan')):.3f} | "
                         f"{w.get('rm', float('nan')):.3f} | {w['n']} |")
    lines += [""] + [f"![{name}]({path})" for name, path in figures.items()]
    lines += ["", "## Samples on held-out prompts", ""]
    for s in samples:
        lines.append(f"- **{s['prompt']}**  ")
        for model in ("base", "sft", "ppo"):
            if model in s:
                lines.append(f"  {model}: {s[model]} *(U = {s[model + '_u']:+.2f})*  ")
    path = out / "report.md"
    io.write_text_atomic(path, "\n".join(lines) + "\n")
    return path


def base_info(base_path) -> dict:
    """A world base model's ``pretrain_info.json`` (shapes, lr, losses, timing); {} for any other model."""
    path = Path(str(base_path)) / "pretrain_info.json"
    return json.loads(path.read_text()) if path.exists() else {}


def lr_scale(info: dict) -> float:
    """Learning rates for SFT, RM and PPO on a world base model, relative to the stage defaults.

    The defaults were tuned on the shipped tiny base, pretrained at peak lr 2e-3; a larger
    rung of the ladder is pretrained at a smaller lr (GPT-3, Table 2.1), and fine-tuning it at
    tiny's rates wrecks it (the large SFT model's held-out corpus loss went 0.52 -> 3.6). So a
    base pretrained at lr x (``info``: its ``base_info``) fine-tunes at x / 2e-3 of each
    default. Other models: 1.
    """
    from .pretrain import SIZES
    return float(info["lr"]) / SIZES["tiny"].lr if info.get("lr") else 1.0


def _pilot(base_model, device: str, lora: bool | None, configs) -> dict:
    """Size the stages for a real model (``models.autopilot``); ``lora`` True/False overrides its choice."""
    from .lora import LoRAConfig
    from .models import apply_autopilot, autopilot
    pilot = autopilot(base_model, device)
    if lora is not None:
        pilot["lora"] = LoRAConfig() if lora else None
    apply_autopilot(pilot, *configs)
    sft, rm, ppo = configs
    return {"params": pilot["params"], "precision": pilot["precision"], "lora": pilot["lora"] is not None,
            "gradient_checkpointing": pilot["gradient_checkpointing"], "reason": pilot["reason"],
            "sft_batch_size": sft.batch_size, "rm_batch_prompts": rm.batch_prompts, "ppo_batch_size": ppo.batch_size,
            "ppo_mini_batch_size": ppo.mini_batch_size, "max_new_tokens": ppo.max_new_tokens,
            "lr": {"sft": sft.lr, "rm": rm.lr, "ppo": ppo.lr}}


def _rm_sft(rm_base: Path, out: Path, settings, summary: dict):
    """SFT of the reward model's own base (``run(rm_model=...)``); returns its path and the RM
    config at that base's learning-rate scale."""
    from .sft import run_sft
    from .models import REAL_MODEL_PARAMS, REAL_MODEL_RM_EPOCHS
    sft_config, rm_config, _ = _with_run_args(summary.get("args", {}), *_stage_configs(settings))  # the policy's
    info = base_info(rm_base)
    scale = lr_scale(info)
    sft_config.lr, rm_config.lr = sft_config.lr * scale, rm_config.lr * scale
    if info.get("params", 0) > REAL_MODEL_PARAMS:     # as `models.autopilot` sets a larger policy's
        rm_config.epochs = min(rm_config.epochs, REAL_MODEL_RM_EPOCHS)
    t = time.perf_counter()
    run_sft(rm_base, out, sft_config, progress=False)
    summary["rm_model"] = {"base": str(rm_base), "sft": str(out), "lr_scale": scale,
                           "lr": {"sft": sft_config.lr, "rm": rm_config.lr},
                           "sft_s": round(time.perf_counter() - t, 2)}
    return out, rm_config


LABELER_KEYS = ("labelers_tau", "labeler_labeler_agreement", "labeler_gold_agreement")
RM_INFO_ONLY = ("config", "init", "offset", "train_rankings", "train_s", "sampling_s")  # rm_info.json, not summary["rm"]


def _rm_summary(metrics: dict, train_prompts: int, **extra) -> dict:
    """``summary["rm"]``: a reward model's held-out metrics without their per-pair lists, ``extra``, and how many
    rankings trained it."""
    return {k: v for k, v in metrics.items() if not isinstance(v, list)} | extra | {"train_prompts": train_prompts}


def _rm_figures(out: Path, history: list[dict], metrics: dict, world: dict) -> dict[str, str]:
    """The reward model's training curve (with the labelers' agreement with gold as its ceiling) and its
    held-out chosen-vs-rejected rewards, saved in ``out/plots``."""
    ceiling = world["labelers"]["labeler_gold_agreement_fresh"]["all"]
    return {"RM accuracy": str(plots.save(plots.rm_training(history, metrics, ceiling),
                                          out / "plots" / "rm_accuracy.png").relative_to(out)),
            "RM rewards": str(plots.save(plots.reward_histogram(metrics["chosen_rewards"], metrics["rejected_rewards"]),
                                         out / "plots" / "rm_rewards.png").relative_to(out))}


def _rankings_of(rm_dir: Path, rm: dict) -> tuple[list[dict], list[dict]]:
    """The RM stage's training rankings and held-out rows: from memory when the stage ran in this process,
    else from ``rankings.jsonl`` and ``heldout.jsonl`` beside the reward model (a resumed run)."""
    if "rankings" in rm:
        return rm["rankings"], rm["heldout"]
    return io.read_jsonl(rm_dir / "rankings.jsonl"), io.read_jsonl(rm_dir / "heldout.jsonl")


def _next_reward_model(out: Path, r: int, policy_path: Path, rankings: list[dict], heldout: list[dict], tau: float,
                       rm_config, rm_init: Path, device: str, trust_remote_code: bool) -> dict:
    """Step 2 of round ``r`` >= 2 (the paper, section 3.1): the last round's policy answers each of the world's
    training comparison prompts K/2 times beside K/2 new SFT samples, a new labeler ranks them
    (`reward.policy_comparisons`), and a new reward model is trained from ``rm_init`` on these and every
    earlier round's ``rankings``, measured on the same ``heldout`` rows and saved in ``out/round{r}/rm``.
    Returns `reward.fit_reward_model`'s result with ``new``, this round's rankings."""
    from .generation import load_model
    from .reward import comparison_prompts, fit_reward_model, policy_comparisons, save_comparisons, split_heldout
    sft, tokenizer = load_model(out / "sft", device, trust_remote_code)
    policy, _ = load_model(policy_path, device, trust_remote_code)
    _, train_prompts = split_heldout(comparison_prompts(rm_config), rm_config.heldout_fraction)
    new = policy_comparisons(sft, policy, tokenizer, train_prompts, rm_config, tau, round_no=r)
    del sft, policy
    folder = out / f"round{r}" / "rm"
    fit = fit_reward_model(rm_init, rankings + new, heldout, tau, rm_config, folder, progress=False,
                           trust_remote_code=trust_remote_code, info={"round": r, "new_rankings": len(new)})
    save_comparisons(folder, rankings + new, heldout)
    return {**fit, "new": new}


def _round_record(r: int, summary: dict, prompts: list[str], responses: dict, seed: int) -> dict:
    """One round of ``summary["rounds"]``: its reward model's held-out accuracy, its policy's rates and KL,
    and the policy's gold win rate over the SFT answers (`evaluate.win_rate`)."""
    from .evaluate import win_rate
    from .world.gold import utility
    u = {name: [utility(p, y) for p, y in zip(prompts, responses[name])] for name in ("ppo", "sft")}
    rm, ppo = summary["rm"], summary["ppo"]
    return {"round": r, "rm": {k: rm[k] for k in ("accuracy_gold", "accuracy_labelers", "train_prompts")},
            "ppo": {k: ppo[k] for k in ("kl", "helpful_rate", "false_fact_rate", "harmful_rate")},
            "ppo_vs_sft": win_rate(u["ppo"], u["sft"], seed)}


def _save_progress(out: Path, summary: dict, metrics: list[dict], timings: dict, answers: dict) -> None:
    """``summary.json``, ``metrics.jsonl`` and ``answers.json`` (each model's answers to the evaluation
    prompts) as they stand after a stage, written atomically: a run that stops later (a kill, out of
    memory) keeps what its finished stages measured, and ``resume=True`` goes on from there. Stages
    not run yet are absent, as in any summary; ``timings_s.total`` and ``win_rates`` come last."""
    summary["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
    io.write_json_atomic(out / "answers.json", answers)
    io.write_jsonl_atomic(out / "metrics.jsonl", metrics)
    io.write_json_atomic(out / "summary.json", summary)


def _finished(out: Path, summary: dict, resume: bool) -> dict:
    """What a stopped run in ``out`` finished, for ``resume``: its summary, metrics and answers, and
    ``done``, the stages whose results and checkpoints are all there (``sft``, ``rm``). Empty when
    not resuming or when ``out`` holds no run. A run made with other settings is a ValueError that
    names them: its results would not be this run's."""
    if not resume or not (out / "summary.json").is_file():
        return {"done": set()}
    saved = io.read_json(out / "summary.json")
    differ = {k: saved.get(k) for k in ("seed", "fast", "args") if saved.get(k) != summary[k]}
    if differ:
        raise ValueError(f"{out} holds a run made with other settings ({differ}, now "
                         f"{ {k: summary[k] for k in differ} }): resume it with the same ones, or give another --out")
    answers = io.read_json(out / "answers.json") if (out / "answers.json").is_file() else {}
    done = set()
    if "sft" in saved and "sft" in answers and (out / "sft" / "sft_info.json").is_file():
        done.add("sft")
        if "rm" in saved and (out / "rm" / "rm_info.json").is_file():
            done.add("rm")
    return {"done": done, "summary": saved, "answers": answers,
            "metrics": io.read_jsonl(out / "metrics.jsonl") if (out / "metrics.jsonl").is_file() else []}


def _reused(prev: dict, stage: str, metrics: list[dict], timings: dict) -> None:
    """A finished stage's logged steps and time, as the stopped run recorded them."""
    metrics += [m for m in prev["metrics"] if m.get("stage") == stage]
    timings[stage] = prev["summary"].get("timings_s", {}).get(stage, 0.0)


def run(out: str | Path = "runs/latest", fast: bool | None = None, model: str | None = None,
        device: str | None = None, seed: int = 0, stages: tuple[str, ...] = STAGES,
        trust_remote_code: bool = False, lora: bool | None = None, ppo_iterations: int | None = None,
        rm_model: str | Path | None = None, more_comparisons: int | None = None, rm_prior: bool | None = None,
        rounds: int = ROUNDS, resume: bool = False, more_demonstrations: int | None = None,
        rm_epochs: int | None = None, beta: float | None = None) -> dict:
    """Run the pipeline; returns the summary written to ``out/summary.json``. The summary and
    ``metrics.jsonl`` are also written after every stage, so a run that stops keeps what it measured.

    ``resume``: go on with a run in ``out`` that stopped (killed, out of memory), made with the same
    arguments: finished SFT and RM stages are read back instead of trained again (their answers and
    checkpoints are in ``out``), and PPO continues from its last checkpoint (``PPOConfig.save_every``).
    On a CPU the result is the run that did not stop.

    ``model``: any causal LM's folder or hub name (default: the shipped tiny model). The
    world's own models (the size ladder, with the world's tokenizer) keep the tiny world's
    settings; for any other model ``models.autopilot`` picks LoRA, batch sizes and learning
    rates for the device (``summary["autopilot"]`` says what and why). ``lora`` True/False
    overrides the choice, for any model. Running out of memory raises ``models.OutOfMemory``
    naming the setting to lower. ``ppo_iterations`` replaces PPOConfig's 40.

    ``rm_model``: a larger world base for the reward model, the paper's setting (one 6B reward
    model for policies of every size). It is fine-tuned on the demonstrations too (``rm_sft/``,
    at its own ``lr_scale``), and the reward model starts from that SFT model; its comparisons
    are still the policy's SFT samples, and PPO's value model starts from it, as always.

    ``more_demonstrations``: that many more demonstrations for SFT (``SFTConfig.more_demonstrations``): new
    prompts of the world's mix with the labelers' good answers. None: ``MORE_DEMONSTRATIONS`` for the world's
    own models (``FAST_MORE_DEMONSTRATIONS`` in fast mode), 0 for any other; 0: the world's file alone.

    ``more_comparisons``: that many more comparison prompts for the reward model
    (``RMConfig.more_prompts``): new prompts of the world's mix, sampled and ranked the same way.
    None: ``MORE_COMPARISONS`` for the world's own models (``FAST_MORE_COMPARISONS`` in fast mode),
    0 for any other; 0 ranks the world's comparison file alone, as the paper's method needs.

    ``rm_epochs``: the reward model's epochs. None: ``MORE_COMPARISONS_EPOCHS`` with ``MORE_COMPARISONS`` or more
    comparison prompts outside fast mode, else `RMConfig`'s (6; 1 in fast mode; real models: `autopilot`'s).
    With that many comparisons the reward model also computes each prompt once (`RMConfig.share_prompts`).

    ``beta``: PPO's KL weight. None: ``MORE_COMPARISONS_BETA`` with ``MORE_COMPARISONS`` or more comparison
    prompts outside fast mode, else `PPOConfig`'s (0.1).

    ``rounds``: how many times steps 2 and 3 run (the paper, section 3.1: "Steps 2 and 3 can be iterated
    continuously"). Round r >= 2 ranks K/2 answers of round r-1's policy beside K/2 new SFT samples for each
    of the world's training comparison prompts, trains a new reward model from the SFT model on every
    round's rankings (``round{r}/rm``) and a new PPO policy from the SFT model against it (``round{r}/ppo``).
    ``summary["rounds"]`` records each round; ``ppo``, ``rm`` and the win rates are the last round's.

    ``rm_prior``: the reward model adds ``a * log pi_SFT(y|x) + b * |y|`` to its head, a and b fitted
    on its rankings (``RMConfig.likelihood_prior``, `reward.LikelihoodPrior`; not the paper's). None:
    ``RM_PRIOR`` (off) for the world's own models, off for any other.
    """
    from .generation import load_model
    from .models import friendly_oom, is_world_tokenizer, load_tokenizer
    from .ppo import run_ppo, samples_and_kl
    from .reward import accuracy_on_policy, run_reward_model
    from .sft import run_sft
    from .world.gold import utility

    settings = get_settings(fast=fast, device=device, seed=seed)
    if model:
        from .models import require_model
        require_model(model)
    if rm_model is not None and not (Path(rm_model) / "config.json").is_file():
        raise FileNotFoundError(f"rm_model: no model folder at {rm_model} (config.json missing); "
                                "make one with `minirlhf pretrain --size SIZE --out FOLDER`")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base_path = (Path(model) if Path(model).exists() else model) if model else base_model_dir("tiny")
    sft_config, rm_config, ppo_config = _stage_configs(settings)
    info = base_info(base_path)
    scale = lr_scale(info)
    if scale != 1.0:
        sft_config.lr, rm_config.lr, ppo_config.lr = (c.lr * scale for c in (sft_config, rm_config, ppo_config))
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1 (steps 2 and 3 once), not {rounds}")
    if ppo_iterations is not None:
        if ppo_iterations < 1:
            raise ValueError(f"ppo_iterations must be at least 1, not {ppo_iterations}")
        ppo_config.iterations = ppo_iterations
    prompts = eval_prompts(100 if settings.fast else None)
    timings, metrics, figures, t_start = {}, [], {}, time.perf_counter()
    from .ladder import code_commit
    summary = {"seed": seed, "device": settings.device, "fast": settings.fast, "commit": code_commit()}
    world = json.loads((world_dir() / "world.json").read_text())
    summary["world"] = {"labelers": world["labelers"], "eval_temperature": EVAL_TEMPERATURE}
    world_model = is_world_tokenizer(load_tokenizer(base_path, trust_remote_code))
    if more_comparisons is None:
        more_comparisons = (FAST_MORE_COMPARISONS if settings.fast else MORE_COMPARISONS) if world_model else 0
    if more_demonstrations is None:
        more_demonstrations = (FAST_MORE_DEMONSTRATIONS if settings.fast else MORE_DEMONSTRATIONS) if world_model else 0
    sft_config.more_demonstrations = more_demonstrations
    if rm_epochs is not None and rm_epochs < 1:
        raise ValueError(f"rm_epochs must be at least 1, not {rm_epochs}")
    if beta is not None and beta < 0:
        raise ValueError(f"beta must be at least 0, not {beta}")
    rm_epochs, beta, many = comparisons_settings(more_comparisons, rm_epochs, beta, settings.fast)
    rm_config.share_prompts = many
    ppo_config.beta = beta if beta is not None else ppo_config.beta
    rm_prior = world_model and RM_PRIOR if rm_prior is None else rm_prior
    summary["args"] = {"model": str(base_path), "rm_model": str(rm_model) if rm_model else None,
                       "more_demonstrations": more_demonstrations, "more_comparisons": more_comparisons,
                       "rm_epochs": rm_epochs, "share_prompts": many, "beta": beta, "rm_prior": rm_prior,
                       "lora": lora, "stages": list(stages), "rounds": rounds}
    prev = _finished(out, summary, resume)
    done = prev["done"]

    bar = tqdm(total=len(stages), desc="minirlhf run", unit="stage")
    responses = {}

    def judged(name: str, path: Path, answers: list[str] | None = None):
        t = time.perf_counter()
        judged_model = tokenizer = None
        if answers is None:
            judged_model, tokenizer = load_model(path, settings.device, trust_remote_code)
            answers = _samples(judged_model, tokenizer, prompts, seed)
        responses[name] = answers
        summary[name] = {"model": str(path), **rates(prompts, responses[name])}
        metrics.append({"stage": "eval", "step": 0, "model": name,
                        **{k: v for k, v in summary[name].items() if isinstance(v, float)}})
        timings["eval"] = timings.get("eval", 0.0) + time.perf_counter() - t
        return judged_model, tokenizer

    bar.set_postfix_str("judging the base model")
    base_model, base_tokenizer = judged("base", base_path, prev.get("answers", {}).get("base"))
    if base_model is None:           # answers read back (--resume): the tokenizer says whether the autopilot runs
        base_tokenizer = load_tokenizer(base_path, trust_remote_code)
    if lora is not None or not is_world_tokenizer(base_tokenizer):
        if base_model is None:       # the autopilot sizes the stages from the model itself
            base_model, _ = load_model(base_path, settings.device, trust_remote_code)
        summary["autopilot"] = _pilot(base_model, settings.device, lora, (sft_config, rm_config, ppo_config))
    rm_config.epochs = rm_epochs or rm_config.epochs              # asked for: over RMConfig's and the autopilot's
    summary["lr"] = {"sft": sft_config.lr, "rm": rm_config.lr, "ppo": ppo_config.lr, "scale": scale}  # as trained
    del base_model
    bar.update(2)
    _save_progress(out, summary, metrics, timings, responses)

    if "sft" in stages and "sft" in done:
        _reused(prev, "sft", metrics, timings)
        figures["SFT loss"] = "plots/sft_loss.png"
        judged("sft", out / "sft", prev["answers"]["sft"])
        bar.update()
    elif "sft" in stages:
        bar.set_postfix_str("SFT")
        t = time.perf_counter()
        with friendly_oom("SFT", batch_size=sft_config.batch_size, lora=sft_config.lora is not None,
                          gradient_checkpointing=sft_config.gradient_checkpointing):
            sft = run_sft(base_path, out / "sft", sft_config, progress=False, trust_remote_code=trust_remote_code)
        timings["sft"] = time.perf_counter() - t
        metrics += sft.history
        figures["SFT loss"] = str(plots.save(plots.loss_curves(sft.history), out / "plots" / "sft_loss.png")
                                  .relative_to(out))
        judged("sft", out / "sft")
        bar.update()
        _save_progress(out, summary, metrics, timings, responses)

    rm_stage = "rm" in stages and "sft" in stages
    if rm_stage and "rm" in done:
        from .ppo import LearnedReward
        from .reward import comparison_prompts, split_heldout
        _reused(prev, "rm", metrics, timings)
        for key in ("rm", "rm_model"):
            if key in prev["summary"]:
                summary[key] = prev["summary"][key]
        if "round" in summary["rm"]:     # a finished run of several rounds: round 1's reward model is the one in rm/
            info = io.read_json(out / "rm" / "rm_info.json")
            summary["rm"] = _rm_summary({k: v for k, v in info.items() if k not in RM_INFO_ONLY}, info["train_rankings"])
        summary["lr"]["rm"] = rm_config.lr = prev["summary"]["lr"]["rm"]
        learned = LearnedReward.load(out / "rm", settings.device, trust_remote_code)
        held, _ = split_heldout(comparison_prompts(rm_config), rm_config.heldout_fraction)
        rm, held_prompts = {"model": learned.model, "tokenizer": learned.tokenizer}, held
        figures["RM accuracy"], figures["RM rewards"] = "plots/rm_accuracy.png", "plots/rm_rewards.png"
        bar.update()
    elif rm_stage:
        bar.set_postfix_str("reward model")
        t = time.perf_counter()
        init = None
        if rm_model is not None:     # the reward model's own, larger base, fine-tuned first
            init, rm_config = _rm_sft(Path(rm_model), out / "rm_sft", settings, summary)
            summary["lr"]["rm"] = rm_config.lr
        rm_config.more_prompts, rm_config.likelihood_prior = more_comparisons, rm_prior
        with friendly_oom("the reward model", batch_prompts=rm_config.batch_prompts, lora=rm_config.lora is not None,
                          gradient_checkpointing=rm_config.gradient_checkpointing):
            rm = run_reward_model(out / "sft", out / "rm", rm_config, progress=False,
                                  trust_remote_code=trust_remote_code, init_path=init)
        timings["rm"] = time.perf_counter() - t
        metrics += rm["history"]
        held_prompts = [r["prompt"] for r in rm["heldout"]]
        m = rm["metrics"]
        summary["rm"] = _rm_summary(m, len(rm["rankings"]))
        figures.update(_rm_figures(out, rm["history"], m, world))
        bar.update()
        _save_progress(out, summary, metrics, timings, responses)

    rm_init = out / "rm_sft" if rm_model is not None else out / "sft"     # where every round's reward model starts
    if rm_stage:
        rankings, last = None, out       # every round's rankings so far (read when round 2 needs them); the last round's folder
        for r in range(1, rounds + 1) if "ppo" in stages else ():
            folder = out if r == 1 else out / f"round{r}"
            if r > 1:                    # step 2 again, on the last round's policy (`_next_reward_model`)
                bar.set_postfix_str(f"round {r}: ranking the PPO policy's answers, a new reward model")
                t = time.perf_counter()
                if rankings is None:
                    rankings, heldout = _rankings_of(out / "rm", rm)
                rm = _next_reward_model(out, r, last / "ppo" / "policy", rankings, heldout,
                                        summary["rm"]["labelers_tau"], rm_config, rm_init, settings.device,
                                        trust_remote_code)
                rankings = rankings + rm["new"]
                timings["rm"] += time.perf_counter() - t
                metrics += [{**h, "round": r} for h in rm["history"]]
                labels = {k: summary["rm"][k] for k in LABELER_KEYS if k in summary["rm"]}  # the same held-out rows
                summary["rm"] = _rm_summary(rm["metrics"], len(rankings), **labels) | {"round": r}
                figures.update(_rm_figures(out, rm["history"], rm["metrics"], world))
            bar.set_postfix_str("PPO" if rounds == 1 else f"round {r}: PPO")
            t = time.perf_counter()
            with friendly_oom("PPO", mini_batch_size=ppo_config.mini_batch_size, batch_size=ppo_config.batch_size,
                              lora=ppo_config.lora is not None,
                              gradient_checkpointing=ppo_config.gradient_checkpointing):
                ppo = run_ppo(out / "sft", folder / "rm", folder / "ppo", ppo_config, progress=False, resume=resume,
                              trust_remote_code=trust_remote_code, callback=lambda m, _: bar.set_postfix_str(
                                  f"PPO iteration {m['step']}/{ppo_config.iterations}"))
            timings["ppo"] = timings.get("ppo", 0.0) + time.perf_counter() - t
            bar.set_postfix_str("judging the PPO policy")
            metrics += ppo["history"] if r == 1 else [{**h, "round": r} for h in ppo["history"]]
            figures["PPO curves"] = str(plots.save(plots.ppo_curves(ppo["history"]), out / "plots" / "ppo_curves.png")
                                        .relative_to(out))
            t = time.perf_counter()      # the answers judged and their KL to SFT, from one sampling pass
            answers, kl = samples_and_kl(ppo["policy"], ppo["ref_policy"], ppo["tokenizer"], prompts,
                                         EVAL_TEMPERATURE, EVAL_MAX_NEW_TOKENS, seed=seed)
            timings["eval"] += time.perf_counter() - t
            judged("ppo", folder / "ppo" / "policy", answers)
            summary["ppo"]["kl"] = round(kl, 4)
            summary["ppo"]["skipped_steps"] = sum(h.get("policy/skipped_steps", 0) for h in ppo["history"])
            t = time.perf_counter()      # the RM on the PPO policy's answers to its held-out comparison prompts
            summary["rm"]["on_ppo_samples"] = accuracy_on_policy(
                rm["model"], rm["tokenizer"], ppo["policy"], ppo["tokenizer"], held_prompts,
                summary["rm"]["labelers_tau"], rm_config, seed=seed + 5)
            timings["eval"] += time.perf_counter() - t
            if rounds > 1:
                summary.setdefault("rounds", []).append(_round_record(r, summary, prompts, responses, seed))
            last = folder
        if "ppo" in stages:
            if rounds > 1:
                figures["rounds"] = str(plots.save(plots.rounds(summary["rounds"]), out / "plots" / "rounds.png")
                                        .relative_to(out))
            bar.update()
            _save_progress(out, summary, metrics, timings, responses)

        bar.set_postfix_str("evaluation")
        t = time.perf_counter()
        summary["win_rates"] = {
            f"{a}_vs_{b}": judged_win_rate(prompts, responses[a], responses[b], seed, world["labelers"]["tau"],
                                           rm=(rm["model"], rm["tokenizer"]))
            for a, b in (("sft", "base"), ("ppo", "sft"), ("ppo", "base")) if a in responses}
        figures["win rates"] = str(plots.save(plots.win_rates(summary["win_rates"]), out / "plots" / "win_rates.png")
                                   .relative_to(out))
        timings["eval"] += time.perf_counter() - t
        bar.update()
    bar.close()

    figures["judge rates"] = str(plots.save(plots.judge_rates({n: summary[n] for n in ("base", "sft", "ppo") if n in summary}),
                                            out / "plots" / "judge_rates.png").relative_to(out))
    timings["total"] = time.perf_counter() - t_start
    summary["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
    samples = [{"prompt": p, **{n: rs[i] for n, rs in responses.items()},
                **{n + "_u": utility(p, rs[i]) for n, rs in responses.items()}} for i, p in enumerate(prompts)]
    io.write_jsonl_atomic(out / "metrics.jsonl", metrics)
    io.write_jsonl_atomic(out / "samples.jsonl", samples)
    io.write_json_atomic(out / "summary.json", summary)
    if "autopilot" in summary:
        info.setdefault("params", summary["autopilot"]["params"])
    report = _report(out, summary, info, samples[:8], figures)
    print(f"report:  {report}\nplots:   {out / 'plots'}\nsummary: {out / 'summary.json'}")
    return summary
