"""DPO: the policy trained directly on the labelers' rankings, with no reward model and no RL.

Beyond the paper: Rafailov et al. (2023, "Direct Preference Optimization") show that the
objective PPO maximises,

    max_pi  E[r(x, y)] - beta * KL(pi || pi_SFT),

is maximised by pi*(y | x) = pi_SFT(y | x) exp(r(x, y) / beta) / Z(x). Read backwards, every
policy defines an *implicit reward*

    r_pi(x, y) = beta * log pi(y | x) / pi_SFT(y | x)     (+ beta log Z(x), the same for every y)

and the term of x alone cancels in a comparison of two answers to the same prompt. Put r_pi in
the reward model's own ranking loss (`reward.ranking_loss`) and the policy trains on the
rankings directly:

    loss = -1/C(K,2) * sum_{(w, l)} log sigmoid( beta * [ log pi(y_w|x)/pi_SFT(y_w|x) - log pi(y_l|x)/pi_SFT(y_l|x) ] )

With K = 2 this is the DPO loss of the paper; with K > 2 every ranking brings its C(K, 2) pairs
in one batch element, as the reward model's loss does. log pi(y | x) is the sum of the response
tokens' log-probabilities (sampling temperature 1, as in training).

`run_dpo` takes a folder written by `minirlhf run` and trains on the same rankings its reward
model learned from (``rm/rankings.jsonl``), measures the implicit reward on the same held-out
comparisons, and judges the DPO policy against the run's own SFT, base and PPO answers, with its
KL to the SFT model measured as CONTRACT defines ``ppo.kl`` (one reward–KL frontier with PPO and
best-of-n).
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .lora import LoRAConfig
from .models import after_training, amp_dtype, autocast, backward_step, dropout_off, for_training, grad_scaler
from .reward import length_grouped_batches, load_rankings, ranking_loss, ranking_optimizer, ranking_pairs
from .settings import require_positive
from .sft import IGNORE, _pad_id, collate, tokenize_example


@dataclass
class DPOConfig:
    """DPO settings; each comment says where the default comes from."""
    beta: float = 0.1          # Rafailov et al. 2023's dialogue runs (0.5 for TL;DR); TRL's default
    epochs: int = 2            # = RMConfig: the same rankings, as many passes (1 did worse: docs/dpo.md)
    batch_prompts: int = 8     # = RMConfig: one batch element is one prompt's K answers and C(K,2) pairs
    lr: float = 1e-4           # the DPO paper's 1e-6 is for 2.8B-6B models; tiny ones take larger steps
                               # (SFT's is 1e-3, the RM's 3e-4); on seeds 0-2, 3e-5 and 3e-4 did worse (docs/dpo.md)
    weight_decay: float = 0.0  # = RMConfig
    warmup_ratio: float = 0.1  # = RMConfig: linear warm-up share of the steps, then cosine decay
    max_length: int = 192      # = RMConfig: prompt + response tokens
    group_by_length: int = 16  # = RMConfig: batches from length-sorted chunks, fewer pad tokens
    grad_clip: float = 1.0     # = SFTConfig and PPO
    lora: LoRAConfig | None = None  # None: train every weight; LoRAConfig(): adapters, merged after
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% slower
    bf16: bool | None = None   # bf16 autocast; None: on GPUs with native bf16, never on the CPU
    fp16: bool | None = None   # fp16 autocast + gradient scaling; None: on CUDA GPUs without bf16 (T4)
    seed: int = 0
    device: str | None = None  # run_dpo's models; None: the machine's GPU, else CPU (`settings.get_settings`).
                               # train_dpo trains where the policy is

    def __post_init__(self):
        require_positive(self, "epochs", "batch_prompts", "max_length", "group_by_length")
        for name in ("beta", "lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"DPOConfig.{name} must be a number > 0, not {getattr(self, name)}")


@dataclass
class DPOResult:
    history: list[dict] = field(default_factory=list)  # one record per step, TRL's DPO metric names
    seconds: float = 0.0
    model: object = None


# ---------------------------------------------------------------------------- losses

def dpo_loss(logratios: torch.Tensor, rankings: list[list[int]], beta: float) -> torch.Tensor:
    """The ranking loss with the implicit reward beta * log pi/pi_SFT in place of r(x, y).

    logratios: (B, K), log pi(y_bk | x_b) - log pi_SFT(y_bk | x_b) summed over the answer's tokens;
    rankings[b]: indices into K, best first.

        loss = mean_b [ -1/C(K,2) * sum_{(w, l)} log sigmoid(beta * (logratio_bw - logratio_bl)) ]

    K = 2 with ranking [0, 1] is the DPO loss: -log sigmoid(beta * (logratio_chosen - logratio_rejected)).
    """
    return ranking_loss(beta * logratios, rankings)


def sequence_logps(model, batch: dict) -> torch.Tensor:
    """log pi(y | x) = sum_t log pi(y_t | x, y_<t) over each row's labelled tokens (the answer and its eos).

    batch: `sft.collate`'s input_ids, labels (-100 on prompt and padding), attention_mask, each (N, T) -> (N,).
    """
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
    labels = batch["labels"][:, 1:]
    mask = labels != IGNORE
    token_logp = logits.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, -1)
    return (token_logp * mask).sum(-1)


# ---------------------------------------------------------------------------- data

def tokenize_rankings(tokenizer, rankings: list[dict], max_length: int, source: str = "rankings") -> list[list[dict]]:
    """Every answer of every ranking as an SFT example (prompt masked): examples[row][k]."""
    return [[tokenize_example(tokenizer, row["prompt"], y, max_length, where=f"{source}, row {i}")
             for y in row["responses"]] for i, row in enumerate(rankings, start=1)]


def _device_batch(examples: list[dict], tokenizer, device) -> dict:
    return {k: v.to(device) for k, v in collate(examples, _pad_id(tokenizer)).items()}


@torch.no_grad()
def logps_of(model, tokenizer, examples: list[dict], batch_size: int = 64) -> torch.Tensor:
    """`sequence_logps` of every example, in batches, without gradients: (N,) on the CPU."""
    was_training = model.training
    model.eval()
    out = [sequence_logps(model, _device_batch(examples[i:i + batch_size], tokenizer, model.device)).float().cpu()
           for i in range(0, len(examples), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


def implicit_rewards(policy, ref_policy, tokenizer, rows: list[dict], beta: float,
                     max_length: int = 192) -> list[float]:
    """beta * log pi(y|x)/pi_SFT(y|x) of every answer of ``rows`` (rankings or comparisons), row after row:
    the DPO policy read as a reward model (`reward.evaluate` takes these as its ``scores``)."""
    flat = [e for row in tokenize_rankings(tokenizer, rows, max_length) for e in row]
    return (beta * (logps_of(policy, tokenizer, flat) - logps_of(ref_policy, tokenizer, flat))).tolist()


# ---------------------------------------------------------------------------- training

def _pair_stats(beta_logratio: torch.Tensor, logp: torch.Tensor, rankings: list[list[int]], sizes: list[int]) -> dict:
    """TRL's DPO metrics over every (winner, loser) pair of the batch."""
    chosen, rejected, lp_c, lp_r, start = [], [], [], [], 0
    for ranking, k in zip(rankings, sizes):
        w, l = map(list, zip(*ranking_pairs(ranking)))
        chosen.append(beta_logratio[start:start + k][w])
        rejected.append(beta_logratio[start:start + k][l])
        lp_c.append(logp[start:start + k][w])
        lp_r.append(logp[start:start + k][l])
        start += k
    c, r = torch.cat(chosen), torch.cat(rejected)
    return {"rewards/chosen": c.mean().item(), "rewards/rejected": r.mean().item(),
            "rewards/accuracies": (c > r).float().mean().item(), "rewards/margins": (c - r).mean().item(),
            "logps/chosen": torch.cat(lp_c).mean().item(), "logps/rejected": torch.cat(lp_r).mean().item()}


def train_dpo(policy, ref_policy, tokenizer, rankings, config: DPOConfig | None = None,
              progress: bool = True) -> DPOResult:
    """Train ``policy`` on rankings with `dpo_loss` against the frozen ``ref_policy`` (the SFT model).

    ``rankings`` is anything `reward.load_rankings` reads (K-way rows or prompt/chosen/rejected pairs;
    a JSONL path, a list of dicts or a Dataset). The reference's log-probabilities are computed once,
    before training. With ``config.lora`` only adapters train, merged into the returned model.
    """
    config = config or DPOConfig()
    rankings = load_rankings(rankings)
    examples = tokenize_rankings(tokenizer, rankings, config.max_length)
    dtype = amp_dtype(policy.device, config.bf16, config.fp16)
    with autocast(policy.device, dtype):    # the policy's precision, so that both start from the same log-probs
        ref = logps_of(ref_policy, tokenizer, [e for row in examples for e in row]).to(policy.device)
    starts = [0]
    for row in examples:
        starts.append(starts[-1] + len(row))
    torch.manual_seed(config.seed)
    order_rng = random.Random(config.seed)
    total = math.ceil(len(rankings) / config.batch_prompts) * config.epochs
    policy = for_training(policy, config.lora, config.gradient_checkpointing)
    scaler = grad_scaler(policy.device, dtype)
    opt, sched = ranking_optimizer(policy, config, total)    # the reward model's AdamW and schedule
    dropout_off(policy.train())
    result, t0, step = DPOResult(), time.perf_counter(), 0
    lengths = [sum(len(e["input_ids"]) for e in row) for row in examples]
    bar = tqdm(total=total, desc="DPO", disable=not progress)
    for _ in range(config.epochs):
        for ids in length_grouped_batches(lengths, config.batch_prompts, order_rng, config.group_by_length):
            flat = [e for j in ids for e in examples[j]]
            ref_b = torch.cat([ref[starts[j]:starts[j + 1]] for j in ids])
            with autocast(policy.device, dtype):
                logp = sequence_logps(policy, _device_batch(flat, tokenizer, policy.device)).float()
            logratio = logp - ref_b
            sizes = [len(examples[j]) for j in ids]
            loss, start = [], 0
            for j, k in zip(ids, sizes):
                loss.append(dpo_loss(logratio[start:start + k][None], [rankings[j]["ranking"]], config.beta))
                start += k
            loss = torch.stack(loss).mean()
            backward_step(loss, opt, policy.parameters(), config.grad_clip, scaler)
            sched.step()
            step += 1
            with torch.no_grad():
                stats = _pair_stats(config.beta * logratio, logp, [rankings[j]["ranking"] for j in ids], sizes)
            result.history.append({"stage": "dpo", "step": step, "loss": loss.item(), **stats,
                                   "lr": sched.get_last_lr()[0]})
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{stats['rewards/accuracies']:.2f}")
    bar.close()
    policy, = after_training(policy, gradient_checkpointing=config.gradient_checkpointing)
    result.seconds, result.model = time.perf_counter() - t0, policy
    return result


# ---------------------------------------------------------------------------- on a run folder

RUN_FILES = ("summary.json", "samples.jsonl", "sft/config.json", "rm/rankings.jsonl", "rm/heldout.jsonl")


def require_run(run: Path) -> None:
    """A folder written by `minirlhf run` with its SFT model and the reward model's rankings, or FileNotFoundError."""
    missing = [f for f in RUN_FILES if not (run / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{run}: not a finished `minirlhf run` folder with its rankings (missing {', '.join(missing)}); "
            f"run `minirlhf run --out {run}` first (runs made before the rankings were saved lack rm/rankings.jsonl)")


def config_for_run(summary: dict) -> DPOConfig:
    """DPOConfig for the models of a run (its ``summary.json``): the run's seed; the learning rate in the
    same proportion to the run's reward-model rate as the defaults (a larger world base or a real
    model trains its RM at a smaller rate: `run.lr_scale`, `models.autopilot`); LoRA, gradient
    checkpointing and prompts per step as the autopilot chose them for the RM."""
    from .reward import RMConfig
    config = DPOConfig(seed=summary.get("seed", 0))
    config.lr *= summary.get("lr", {}).get("rm", RMConfig.lr) / RMConfig.lr
    pilot = summary.get("autopilot")
    if pilot:
        config.lora = LoRAConfig() if pilot.get("lora") else None
        config.gradient_checkpointing = bool(pilot.get("gradient_checkpointing"))
        config.batch_prompts = min(config.batch_prompts, pilot.get("rm_batch_prompts") or config.batch_prompts)
    return config


def run_dpo(run_dir: str | Path, out_dir: str | Path | None = None, config: DPOConfig | None = None,
            progress: bool = True, trust_remote_code: bool = False) -> dict:
    """DPO on the rankings of a `minirlhf run` folder, judged as the run judged PPO.

    Trains the run's SFT model (``sft/``) on ``rm/rankings.jsonl`` with the SFT model as reference;
    measures the implicit reward on ``rm/heldout.jsonl`` as the run measured its reward model
    (``implicit_rm``: accuracy against gold and a fresh labeler); samples the evaluation prompts
    (``samples.jsonl``) with the run's seed and temperature, measures the KL to SFT as ``ppo.kl``
    is measured, and the gold win rates over the run's SFT, base and (if any) PPO answers, also
    by labelers and by the run's reward model. Without ``config``, `config_for_run` sizes it as the run
    sized its reward model. Saves ``policy/``, ``summary.json``, ``metrics.jsonl``
    and ``samples.jsonl`` in ``out_dir`` (default ``RUN/dpo``) and returns the summary with
    ``model``, ``ref_policy``, ``tokenizer`` and ``history``.
    """
    from .evaluate import against_run
    from .generation import load_model
    from .io import read_json, read_jsonl, save_checkpoint, write_json_atomic, write_jsonl_atomic
    from .reward import RMConfig, _device, evaluate, fresh_labeler
    run = Path(run_dir)
    require_run(run)
    out = Path(out_dir) if out_dir is not None else run / "dpo"
    summary = read_json(run / "summary.json")
    seed = summary["seed"]
    config = config or config_for_run(summary)
    device = _device(config)                    # config.device, else the machine's GPU or CPU, as for the RM
    policy, tokenizer = load_model(run / "sft", device=device, trust_remote_code=trust_remote_code)
    ref_policy, _ = load_model(run / "sft", device=device, trust_remote_code=trust_remote_code)
    rankings = load_rankings(run / "rm" / "rankings.jsonl")
    heldout = read_jsonl(run / "rm" / "heldout.jsonl", required=("prompt", "responses", "utilities"))
    result = train_dpo(policy, ref_policy, tokenizer, rankings, config, progress)
    t = time.perf_counter()
    scores = implicit_rewards(result.model, ref_policy, tokenizer, heldout, config.beta, config.max_length)
    implicit = evaluate(None, None, heldout, fresh_labeler(summary["rm"]["labelers_tau"], RMConfig(seed=seed)),
                        scores=scores)
    from .ppo import LearnedReward
    rm = LearnedReward.load(run / "rm", device, trust_remote_code)
    judged = against_run(run, result.model, ref_policy, tokenizer, versus=("sft", "base", "ppo"),
                         rm=(rm.model, rm.tokenizer))
    rows, prompts, answers = judged["rows"], judged["prompts"], judged["answers"]
    win_rates = {f"dpo_{k}": w for k, w in judged["win_rates"].items()}
    record = {"seed": seed, "run": str(run), "config": asdict(config), "train_rankings": len(rankings),
              "dpo": {**judged["rates"], "kl": round(judged["kl"], 4)},
              "implicit_rm": {k: v for k, v in implicit.items() if not isinstance(v, list)},
              "rm": {k: summary["rm"][k] for k in ("accuracy_gold", "accuracy_labelers")},
              "win_rates": win_rates,
              "timings_s": {"train": round(result.seconds, 2), "eval": round(time.perf_counter() - t, 2)}}
    save_checkpoint(result.model, tokenizer, out / "policy", "dpo_info.json", record)
    write_json_atomic(out / "summary.json", record)
    write_jsonl_atomic(out / "metrics.jsonl", result.history)
    write_jsonl_atomic(out / "samples.jsonl", [{"prompt": p, "dpo": a, **{k: r[k] for k in ("sft", "ppo") if k in r}}
                                              for p, a, r in zip(prompts, answers, rows)])
    return {**record, "model": result.model, "ref_policy": ref_policy, "tokenizer": tokenizer,
            "history": result.history, "implicit_scores": implicit}
