"""A second round of steps 2 and 3: rank the PPO policy's answers too, train a new RM, run PPO again.

    python benchmarks/rlhf_rounds.py --run runs/t0 runs/t1 runs/t2 --save data/results/rlhf_rounds_cpu.json
                                                     # ~3.5 minutes per run on 2 CPU cores
    python benchmarks/rlhf_rounds.py --show data/results/rlhf_rounds_cpu.json   # a saved result as markdown
    python benchmarks/rlhf_rounds.py --control --out runs/rounds_control --run runs/t0 runs/t1 runs/t2 \
        --save data/results/rlhf_rounds_control_cpu.json                        # the same, SFT samples only

The paper (Ouyang et al. 2022, section 3.1): "Steps 2 and 3 can be iterated continuously; more
comparison data is collected on the current best policy, which is used to train a new RM and then
a new policy." For each folder written by `minirlhf run` (round 1), this draws the RM stage's
comparisons again (`reward.draw_comparisons`: the same SFT samples, labelers and held-out pairs),
adds K answers of the round-1 PPO policy to each training prompt (`--mix`: K/2 of it and K/2 new
SFT samples, so that its answers meet the SFT model's in the same ranking; `--control`: K new SFT
samples and none of the policy's, to tell on-policy rankings from merely more of them), ranked by a labeler
with its own seed, trains a new reward model from the SFT model on both, and runs PPO again from
the SFT model with the run's PPO settings. Round 2 is judged on the run's own evaluation prompts
against the run's SFT answers, as round 1 was. Prints one JSON line; `--save` also writes it.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path


def policy_rankings(sft, ppo_policy, tokenizer, prompts: list[str], config, tau: float, seed: int, mix: bool,
                    control: bool = False) -> list[dict]:
    """K answers per prompt of the round-1 policy (``mix``: K/2 of it, K/2 of SFT, as `minirlhf run --rounds 2`
    does with `reward.policy_comparisons`; ``control``: K new SFT samples, none of the policy's), ranked by a
    new labeler."""
    from minirlhf.reward import policy_comparisons, rank_comparisons, sample_comparisons
    from minirlhf.world.labelers import Labeler
    if mix and not control:
        return policy_comparisons(sft, ppo_policy, tokenizer, prompts, replace(config, seed=seed), tau, round_no=2)
    rows = sample_comparisons(sft if control else ppo_policy, tokenizer, prompts, config,
                              seed=seed + (12 if control else 11))
    return rank_comparisons(rows, Labeler(tau, seed=10 * seed + 5))


def second_round(run: Path, out: Path, mix: bool, device: str, control: bool = False) -> dict:
    from minirlhf.evaluate import against_run
    from minirlhf.generation import load_model
    from minirlhf.io import read_json
    from minirlhf.paths import world_dir
    from minirlhf.ppo import run_ppo
    from minirlhf.reward import accuracy_on_policy, comparison_prompts, draw_comparisons, fit_reward_model, split_heldout
    from minirlhf.run import configs_of
    summary = read_json(run / "summary.json")
    seed, t0 = summary["seed"], time.perf_counter()
    _, config, ppo_config = configs_of(summary, device)      # as the run's
    world = read_json(world_dir() / "world.json")
    prompts = comparison_prompts(config)
    held, rest = split_heldout(prompts, config.heldout_fraction)
    sft, tokenizer = load_model(run / "sft", device=device)
    drawn = draw_comparisons(sft, tokenizer, prompts, config, world["labelers"]["tau"])
    if "rm_model" in summary or "autopilot" in summary or len(drawn["rankings"]) != summary["rm"].get("train_prompts"):
        raise ValueError(f"{run}: round 2 repeats the reward-model stage of the tiny world (no --rm-model or "
                         "--model), and this run did not use it")
    ppo1, _ = load_model(run / "ppo" / "policy", device=device)
    new = policy_rankings(sft, ppo1, tokenizer, rest, config, drawn["tau"], seed, mix, control)
    fit = fit_reward_model(run / "sft", drawn["rankings"] + new, drawn["heldout"], drawn["tau"], config, out / "rm",
                           progress=False, info={"round": 2, "mix": mix, "control": control})
    m = fit["metrics"]
    on_ppo1 = accuracy_on_policy(fit["model"], fit["tokenizer"], ppo1, tokenizer, held, drawn["tau"], config,
                                 seed=seed + 5)
    rm_s = time.perf_counter() - t0
    ppo = run_ppo(run / "sft", out / "rm", out / "ppo", ppo_config, progress=False)
    judged = against_run(run, ppo["policy"], ppo["ref_policy"], ppo["tokenizer"])
    r2 = judged["rates"]
    keep = ("helpful_rate", "false_fact_rate", "harmful_rate")
    return {
        "run": str(run), "seed": seed, "mix": mix, "control": control,
        "round1": {"rm_accuracy_gold": summary["rm"]["accuracy_gold"], "rm_accuracy_labelers": summary["rm"]["accuracy_labelers"],
                   "ppo_vs_sft": summary["win_rates"]["ppo_vs_sft"], "ppo_vs_base": summary["win_rates"]["ppo_vs_base"]["gold"],
                   "kl": summary["ppo"]["kl"], **{k: summary["ppo"][k] for k in keep},
                   "open_qa_helpful": summary["ppo"]["helpful_rate_by_category"]["open_qa"]},
        "round2": {"rm_accuracy_gold": m["accuracy_gold"], "rm_accuracy_labelers": m["accuracy_labelers"],
                   "rm_on_round1_ppo": on_ppo1, "train_rankings": len(drawn["rankings"]) + len(new),
                   "ppo_vs_sft": judged["win_rates"]["vs_sft"], "ppo_vs_base": judged["win_rates"]["vs_base"]["gold"],
                   "kl": round(judged["kl"], 4), **{k: r2[k] for k in keep}, "open_qa_helpful": r2["helpful_rate_by_category"]["open_qa"],
                   "rm_s": round(rm_s, 1), "ppo_s": round(ppo["seconds"], 1)},
        "seconds": round(time.perf_counter() - t0, 1)}


def markdown(r: dict) -> str:
    """A saved result as a markdown table."""
    head = ("| run | round | RM vs gold | RM vs labelers | PPO vs SFT (gold) | PPO vs base | KL | helpful | "
            "open QA helpful | false facts |\n|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for x in r["runs"]:
        for name in ("round1", "round2"):
            y = x[name]
            w = y["ppo_vs_sft"]
            rows.append(f"| {x['run']} | {name[-1]} | {y['rm_accuracy_gold']:.3f} | {y['rm_accuracy_labelers']:.3f} | "
                        f"{w['gold']:.3f} [{w['ci95'][0]:.3f}, {w['ci95'][1]:.3f}] | {y['ppo_vs_base']:.3f} | {y['kl']:.2f} | "
                        f"{y['helpful_rate']:.3f} | {y['open_qa_helpful']:.3f} | {y['false_fact_rate']:.3f} |")
    for name in ("round1", "round2"):                 # each column averaged over the runs (seeds)
        ys = [x[name] for x in r["runs"]]
        mean = lambda get: sum(get(y) for y in ys) / len(ys)  # noqa: E731
        rows.append(f"| mean of {len(ys)} | {name[-1]} | {mean(lambda y: y['rm_accuracy_gold']):.3f} | "
                    f"{mean(lambda y: y['rm_accuracy_labelers']):.3f} | {mean(lambda y: y['ppo_vs_sft']['gold']):.3f} | "
                    f"{mean(lambda y: y['ppo_vs_base']):.3f} | {mean(lambda y: y['kl']):.2f} | "
                    f"{mean(lambda y: y['helpful_rate']):.3f} | {mean(lambda y: y['open_qa_helpful']):.3f} | "
                    f"{mean(lambda y: y['false_fact_rate']):.3f} |")
    return "\n".join([head] + rows)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", nargs="+", default=[], help="folders written by `minirlhf run` (round 1)")
    p.add_argument("--mix", action="store_true", help="rank K/2 answers of the round-1 policy with K/2 of SFT's")
    p.add_argument("--control", action="store_true",
                   help="rank K new SFT samples instead of the policy's answers: twice the rankings, none on-policy")
    p.add_argument("--out", default="runs/rounds", help="where round 2's reward models and policies go")
    from minirlhf.ladder import emit_result, provenance, require_run_folders, result_options, show_saved
    result_options(p)
    args = p.parse_args(argv)
    if args.show:
        return show_saved(args.show, markdown)
    require_run_folders(p, args.run, ("summary.json", "samples.jsonl", "sft/config.json", "ppo/policy/config.json"),
                        "a finished `minirlhf run` folder with PPO")
    if args.mix and args.control:
        p.error("--mix and --control are two different second rounds: give one")
    out = {**provenance("rlhf_rounds", argv, args.device), "mix": args.mix, "control": args.control, "runs": []}
    for run in args.run:
        out["runs"].append(second_round(Path(run), Path(args.out) / Path(run).name, args.mix, args.device, args.control))
        print(f"{run}: {json.dumps(out['runs'][-1]['round2']['ppo_vs_sft'])}", file=sys.stderr, flush=True)
    return emit_result(out, args.save)


if __name__ == "__main__":
    main()
