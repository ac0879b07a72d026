"""Stage 3: PPO against the reward model with a per-token KL penalty (InstructGPT's RL step).

The policy pi (initialised from SFT) maximises, over prompts x from the PPO split,

    objective = E_{y ~ pi(.|x)} [ r(x, y) - beta * log(pi(y|x) / pi_SFT(y|x)) ]
                + ptx_coef * E_{x ~ corpus} [ log pi(x) ]                       (PPO-ptx)

with four separate models: the policy, the frozen reference pi_SFT, the value model
(initialised from the reward model) and the reward (the learned RM, or any callable
``(prompts, responses) -> scores``). Every implementation detail and its source is listed
in ``docs/ppo.md``. The losses below are small pure functions; ``train_ppo`` is the loop.
"""
from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import static_decoding
from .lora import LoRAConfig, load_weights, unwrap
from .models import (after_training, amp_dtype, backward_step_on_device, cache_name, cache_of, context_length,
                     dropout_off, for_training, forward_args, fuse_activations, grad_scaler, prompt_text)
from .models import autocast as _autocast
from .settings import require_positive
from .step_graph import StepGraph


@dataclass
class PPOConfig:
    """PPO settings. Defaults follow TRL's PPO trainer unless the comment says otherwise."""
    iterations: int = 40            # rollouts of `batch_size` prompts (ours: ~1 min on 2 CPU cores)
    batch_size: int = 64            # prompts per rollout (TRL: 64 on the GPU anchor workload)
    mini_batch_size: int = 16       # TRL: 1 minibatch; 4 here learn faster per episode (measured)
    ppo_epochs: int = 4             # TRL: 4 (OpenRLHF, DS-Chat: 1)
    lr: float = 5e-5                # TRL 3e-6 for 100M+ models; our 1M model needs larger steps. Gold win rate
                                    # over SFT, seeds 0-2, same SFT and RM models: 1e-4 with beta 0.05 overshoots
                                    # into "I'm not sure" everywhere (0.48, 0.54, 0.37); 5e-5 with beta 0.1: 0.62,
                                    # 0.60, 0.58. `minirlhf run` with this code: 0.52, 0.59, 0.49 (new RMs). Since gold
                                    # costs 0.02 a word: 5e-5 0.620, 0.639, 0.543; 1e-4 0.644, 0.654, 0.490 (docs/ppo.md)
    beta: float = 0.1               # KL coefficient (TRL kl_coef 0.05; the paper 0.02); our 1M-parameter
                                    # RM is easily fooled, so the policy is held closer to SFT (see lr; beta
                                    # 0.2 measured 0.56, 0.57, 0.49 on those runs' RMs: no better)
    kl_estimator: str = "k1"        # "k1": log pi - log pi_SFT (TRL default); "k3": (r - 1) - log r
    adaptive_kl: bool = False       # lm-human-prefs' controller (Ziegler et al. 2019)
    kl_target: float = 6.0          # lm-human-prefs: target KL 6 nats
    kl_horizon: int = 10000         # lm-human-prefs: horizon 10,000 episodes
    gamma: float = 1.0              # GAE discount (TRL, OpenRLHF: 1)
    lam: float = 0.95               # GAE lambda (TRL: 0.95)
    cliprange: float = 0.2          # policy ratio clip (TRL: 0.2)
    cliprange_value: float = 0.2    # value clip (TRL: 0.2)
    vf_coef: float = 0.1            # value loss weight (TRL: 0.1)
    whiten_rewards: bool = False    # TRL: off; lm-human-prefs: on
    temperature: float = 0.7        # sampling temperature; logits / T in rollout and training (TRL: 0.7)
    max_new_tokens: int = 48        # = the evaluation's answer length
    missing_eos_penalty: float = 1.0  # subtracted from the score of a truncated answer (TRL docs: 1.0)
    ptx_coef: float = 0.0           # PPO-ptx: weight of the pretraining log-likelihood (paper: 27.8 at 175B)
    ptx_batch_size: int = 16        # corpus documents per minibatch for PPO-ptx
    max_grad_norm: float = 1.0      # as in SFT and RM training
    save_every: int = 10            # checkpoint every N iterations (0: never)
    format_prompts: bool = True     # prompts through models.prompt_text: the world's format or the chat template
    bf16: bool | None = None        # bf16 autocast; None: on where the GPU supports it (TRL: bf16 flag)
    fp16: bool | None = None        # fp16 autocast + gradient scaling; None: on CUDA GPUs without bf16 (T4)
    lora: LoRAConfig | None = None  # LoRA on policy and value model (merged at the end); the reference stays SFT
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% slower
    compile: bool = False           # torch.compile the scoring and training passes (`compiled_passes`) and the
                                    # decoding step: fused kernels, fewer launches. Off: 8% less time per iteration
                                    # on 2 CPU cores after 63 s of compiling, 4% on an H200 after 116 s (docs/speed.md)
    cuda_graphs: bool | None = None  # each minibatch update replayed as one CUDA graph (`step_graph`); None: on a
                                    # GPU for GPT-2 models without LoRA, PPO-ptx, fp16, compile or checkpointing
    seed: int = 0
    device: str | None = None       # None: where the policy is (train_ppo); run_ppo: the machine's GPU, else CPU

    def __post_init__(self):
        require_positive(self, "iterations", "batch_size", "mini_batch_size", "ppo_epochs", "max_new_tokens",
                         "ptx_batch_size", "kl_horizon", "save_every", allow_zero=("save_every",))
        if self.kl_estimator not in ("k1", "k3"):
            raise ValueError(f"PPOConfig.kl_estimator must be 'k1' or 'k3', not {self.kl_estimator!r}")
        if self.batch_size % self.mini_batch_size:
            raise ValueError(f"PPOConfig.batch_size ({self.batch_size}) must be a multiple of "
                             f"mini_batch_size ({self.mini_batch_size})")


class PPOError(RuntimeError):
    """Training cannot go on (e.g. a NaN loss); the message says what to change."""


# ---------------------------------------------------------------------------- pure functions

def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    """Mean of x over positions where mask is 1."""
    x = torch.where(mask.bool(), x, 0)   # not x * mask: an inf or NaN where mask is 0 must not count
    mask = mask.to(x.dtype)
    if dim is None:
        return x.sum() / mask.sum().clamp(min=1)
    return x.sum(dim) / mask.sum(dim).clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(x - mean) / std over masked positions; with shift_mean=False the mean is kept."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    return torch.where(mask.bool(), out if shift_mean else out + mean, 0)


def kl_per_token(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(pi || pi_ref) from the sampled token's log-probabilities.

    k1 = log pi(y_t) - log pi_ref(y_t)                 (unbiased, can be negative)
    k3 = (rho - 1) - log rho,  rho = pi_ref(y_t) / pi(y_t)   (unbiased, always >= 0)
    """
    log_ratio = logp - ref_logp
    if estimator == "k1":
        return log_ratio
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r} (use 'k1' or 'k3')")


def token_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """r_t = -beta * kl_t on every response token, plus the score at the last one.

    scores: (B,), kl and mask: (B, T). The last response token is the eos, or the last
    token of an answer cut at the length limit.
    """
    rewards = torch.where(mask.bool(), -beta * kl, 0)
    last = (mask.sum(1) - 1).clamp(min=0).long()
    rewards[torch.arange(len(scores)), last] += scores
    return rewards


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over response tokens (B, T).

    delta_t = r_t + gamma * V_{t+1} - V_t   (V past the last token is 0)
    A_t     = delta_t + gamma * lam * A_{t+1}
    returns = A_t + V_t
    """
    values, rewards = torch.where(mask.bool(), values, 0), torch.where(mask.bool(), rewards, 0)
    T = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last
        advantages[:, t] = last
    return torch.where(mask.bool(), advantages, 0), torch.where(mask.bool(), advantages + values, 0)


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                cliprange: float) -> tuple[torch.Tensor, dict]:
    """PPO's clipped surrogate: mean_t max(-A_t * rho_t, -A_t * clip(rho_t, 1 - eps, 1 + eps)).

    rho_t = pi(y_t) / pi_old(y_t). Returns the loss and (clipfrac, approxkl, ratio).
    log rho is capped at 20 before the exp: past e^88 the exp is inf in fp32, and where the clipped
    branch wins (A > 0) its zero gradient times inf would be NaN; rho = e^20 is clipped already.
    """
    log_ratio = torch.where(mask.bool(), logp - old_logp, 0)   # masked first: exp(inf) past the eos would
    ratio = torch.exp(log_ratio.clamp(max=20.0))                 # give NaN gradients even where-masked later
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - cliprange, 1 + cliprange)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {"clipfrac": masked_mean((clipped > unclipped).float(), mask),
                 "approxkl": 0.5 * masked_mean(log_ratio ** 2, mask), "ratio": masked_mean(ratio, mask)}
    return loss, stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               cliprange_value: float) -> tuple[torch.Tensor, dict]:
    """Clipped value loss: 0.5 * mean_t max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2)."""
    clipped_values = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    unclipped = (values - returns) ** 2
    clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {"clipfrac": masked_mean((clipped > unclipped).float(), mask)}
    return loss, stats


def response_mask(response_ids: torch.Tensor, eos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Truncation at eos: (mask of tokens up to and including the first eos, has_eos per row)."""
    is_eos = response_ids == eos_id
    has_eos = is_eos.any(1)
    first = torch.where(has_eos, is_eos.float().argmax(1), torch.full_like(has_eos, response_ids.shape[1] - 1,
                                                                               dtype=torch.long))
    mask = torch.arange(response_ids.shape[1], device=response_ids.device)[None] <= first[:, None]
    return mask.long(), has_eos


class AdaptiveKL:
    """lm-human-prefs' KL controller: beta <- beta * (1 + clip(KL / target - 1, -0.2, 0.2) * n / horizon)."""

    def __init__(self, beta: float, target: float, horizon: int):
        self.beta, self.target, self.horizon = beta, target, horizon

    def update(self, kl: float, n_episodes: int) -> float:
        error = max(-0.2, min(0.2, kl / self.target - 1))
        self.beta *= 1 + error * n_episodes / self.horizon
        return self.beta


# ---------------------------------------------------------------------------- model passes

def _keep(model, n: int) -> dict:
    """Ask for the LM head on the last n positions only, where the model supports it."""
    return {"logits_to_keep": n} if "logits_to_keep" in forward_args(type(unwrap(model))) else {}


def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on the first real token (prompts are left-padded)."""
    return (attention_mask.cumsum(1) - 1).clamp(min=0)


def autocast(device, bf16: bool | None, fp16: bool | None = None):
    """bf16 autocast on a GPU that supports it, fp16 on one that does not (None: decide from the device)."""
    return _autocast(device, amp_dtype(device, bf16, fp16))


@torch.no_grad()
def rollout(policy, tokenizer, prompts: list[str], max_new_tokens: int, temperature: float,
            generator: torch.Generator, format_prompts: bool = True, static: bool = True,
            compile: bool = False) -> dict:
    """Sample answers with a KV cache: prompts left-padded, logits / temperature.

    Returns prompt ids and mask (B, P), response ids (B, T) with pads after the first eos, and
    the sampling distribution's log-probability of each token and its entropy (B, T).
    GPT-2 models go through ``static_decoding`` (a static cache; a CUDA graph on a GPU) unless
    ``static=False``; other models through transformers' cache, one step at a time. ``compile``: the
    static decoder's step goes through ``torch.compile`` (``PPOConfig.compile``).
    """
    device = policy.device
    fuse_activations(policy)
    texts = [prompt_text(tokenizer, p) for p in prompts] if format_prompts else list(prompts)
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False, padding_side="left")
    require_room(policy, prompts, enc["attention_mask"].sum(1).tolist(), max_new_tokens)   # on the CPU: no sync
    ids, attn = enc["input_ids"].to(device), enc["attention_mask"].to(device)
    if static and static_decoding.supports(policy):
        return {"prompt_ids": ids, "prompt_mask": attn,
                **_static_rollout(policy, tokenizer, ids, attn, max_new_tokens, temperature, generator, compile)}
    out = policy(input_ids=ids, attention_mask=attn, position_ids=_positions(attn), use_cache=True,
                 **_keep(policy, 1))
    name, past, full_attn = cache_name(policy), cache_of(out), attn
    done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    tokens, logps, entropies = [], [], []
    logits = out.logits[:, -1]
    for _ in range(max_new_tokens):
        # sample from softmax(logits / T) by inverting its CDF: one uniform number per row, on the
        # model's device, no host round trip (a vocabulary's worth of random numbers is slower on a CPU)
        logp_all = F.log_softmax(logits.float() / temperature, -1)
        probs = logp_all.exp()
        cdf = probs.cumsum(-1)
        u = torch.rand(len(prompts), 1, generator=generator, device=device) * cdf[:, -1:]
        nxt = torch.searchsorted(cdf, u).squeeze(1).clamp(max=cdf.shape[1] - 1)
        nxt = torch.where(done, torch.full_like(nxt, tokenizer.pad_token_id), nxt)
        logps.append(logp_all.gather(-1, nxt[:, None]).squeeze(1))
        entropies.append(-(probs * logp_all).sum(-1))
        tokens.append(nxt)
        done |= nxt == tokenizer.eos_token_id
        if bool(done.all()):
            break
        full_attn = torch.cat([full_attn, torch.ones_like(full_attn[:, :1])], 1)
        out = policy(input_ids=nxt[:, None], attention_mask=full_attn,
                     position_ids=_positions(full_attn)[:, -1:], use_cache=True, **{name: past})
        past, logits = cache_of(out), out.logits[:, -1]
    return {"prompt_ids": ids, "prompt_mask": attn, "response_ids": torch.stack(tokens, 1),
            "logprobs": torch.stack(logps, 1), "entropy": torch.stack(entropies, 1)}


def require_prompt_list(prompts, what: str = "prompts") -> None:
    """TypeError for one string where a list of prompts belongs (it would be read as one prompt per character)."""
    if isinstance(prompts, (str, bytes)):
        raise TypeError(f"{what} must be a list of prompts, not one string: wrap it as [{prompts[:40]!r}]")


def require_room(policy, prompts: list, lengths: list[int], max_new_tokens: int) -> None:
    """ValueError naming the longest prompt (its index in ``prompts`` and its start) when it and
    ``max_new_tokens`` do not fit a model with learned positions (`models.context_length`): a
    GPT-2 model would fail with a bare index error."""
    limit = context_length(policy)
    longest = max(range(len(lengths)), key=lengths.__getitem__, default=None)
    if limit and longest is not None and lengths[longest] + max_new_tokens > limit:
        raise ValueError(f"prompt {longest} has {lengths[longest]} tokens; with max_new_tokens={max_new_tokens} it "
                         f"needs {lengths[longest] + max_new_tokens} positions and the model has {limit}: shorten "
                         f"the prompt or lower max_new_tokens (prompt {longest}: {str(prompts[longest])[:60]!r}...)")


def _static_rollout(policy, tokenizer, ids, attn, max_new_tokens, temperature, generator, compile=False) -> dict:
    """``rollout`` through a ``StaticDecoder``. On a GPU the prompts are left-padded to a multiple of
    16 tokens, so that a few CUDA graphs serve every batch; the pads are masked and cut off again."""
    if ids.is_cuda:
        ids, attn = _left_pad_to_16(ids, attn, tokenizer.pad_token_id)
    decoder = static_decoding.decoder_for(policy, ids.shape[0], ids.shape[1], max_new_tokens, temperature,
                                          tokenizer.pad_token_id, tokenizer.eos_token_id, compile)
    return decoder.sample(ids, attn, generator)


def _left_pad_to_16(ids: torch.Tensor, attn: torch.Tensor, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts (B, P) left-padded to a multiple of 16 tokens, masked: a few shapes serve every batch."""
    left = -ids.shape[1] % 16
    return F.pad(ids, (left, 0), value=pad_id), F.pad(attn, (left, 0), value=0)


def _sequence(batch: dict, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Prompt + response ids, attention mask and positions, without the final token: its output
    (a prediction after the answer) no score uses."""
    ids = torch.cat([batch["prompt_ids"], batch["response_ids"][:, :-1]], 1)
    attn = torch.cat([batch["prompt_mask"], mask[:, :-1]], 1)
    return ids, attn, _positions(attn)


def logprobs_of(model, batch: dict, mask: torch.Tensor, temperature: float, with_entropy: bool = False):
    """log pi(y_t | x, y_<t) of the response tokens, with logits / temperature: (B, T).

    ``with_entropy=True`` returns ``(logp, entropy)``, the entropy of each position's distribution
    (B, T), computed without gradient (it is a metric)."""
    ids, attn, pos = _sequence(batch, mask)
    T = batch["response_ids"].shape[1]
    if static_decoding.plain_gpt2(model):                            # GPT-2: no host round trip (docs/speed.md)
        core = unwrap(model)
        hidden = static_decoding.hidden_states(core.transformer, ids, attn, pos)[:, -T:]
        logits = core.lm_head(core.transformer.ln_f(hidden))
    else:
        logits = model(input_ids=ids, attention_mask=attn, position_ids=pos, **_keep(model, T)).logits
    if logits.shape[1] != T:                                        # no logits_to_keep: drop the prompt's
        logits = logits[:, -T:]
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    logp_all = F.log_softmax(logits, -1)
    logp = logp_all.gather(-1, batch["response_ids"][..., None]).squeeze(-1)
    if not with_entropy:
        return logp
    with torch.no_grad():                                           # a metric: kept out of the graph
        entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


def values_of(value_model, batch: dict, mask: torch.Tensor) -> torch.Tensor:
    """V(x, y_<t) from the value model's scalar head at every position before a response token."""
    ids, attn, pos = _sequence(batch, mask)
    P = batch["prompt_ids"].shape[1]
    core = unwrap(value_model)                                      # inside a LoRA wrapper, adapters active
    if static_decoding.plain_gpt2(core):                            # GPT-2: no host round trip (docs/speed.md)
        hidden = core.transformer.ln_f(static_decoding.hidden_states(core.transformer, ids, attn, pos)[:, P - 1:])
    else:
        hidden = core.base_model(input_ids=ids, attention_mask=attn, position_ids=pos).last_hidden_state[:, P - 1:]
    return core.score(hidden).squeeze(-1).float()


def compiled_passes(compile: bool):
    """``(logprobs_of, values_of)``, through ``torch.compile`` when ``compile``.

    Compiling the whole function, not only the model, also fuses what follows the model: the
    float cast, ``/ temperature``, ``log_softmax`` and ``gather`` over the vocabulary. The models
    stay as they are (the rollout and the user's later calls run eagerly); dynamo compiles one
    graph per set of shapes and switches to dynamic shapes when a length changes.
    """
    if not compile:
        return logprobs_of, values_of
    return torch.compile(logprobs_of), torch.compile(values_of)


def decode_responses(tokenizer, response_ids: torch.Tensor, mask: torch.Tensor) -> list[str]:
    """Answer texts, cut at eos."""
    eos = tokenizer.eos_token_id
    return [tokenizer.decode([t for t in row[:int(m)] if t != eos], skip_special_tokens=True).strip()
            for row, m in zip(response_ids.tolist(), mask.sum(1).tolist())]


# ---------------------------------------------------------------------------- rewards

class LearnedReward:
    """The learned reward model as a callable ``(prompts, responses) -> scores``.

    It reads text, so its tokenizer may differ from the policy's. Scores are the model's output
    less ``config.reward_offset`` (the normalisation `reward.normalise` saves), each input cut to
    ``max_length`` tokens as in the reward model's training (`reward.encode`).
    """

    def __init__(self, model, tokenizer, batch_size: int = 64, format_prompts: bool = True, max_length: int = 192):
        self.model, self.tokenizer, self.batch_size = model.eval(), tokenizer, batch_size
        self.format_prompts, self.max_length = format_prompts, max_length

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", trust_remote_code: bool = False) -> "LearnedReward":
        """A saved reward model; its ``rm_info.json``, when there, gives the ``max_length`` it was trained with."""
        from transformers import AutoModelForSequenceClassification

        from .io import read_json
        from .models import load_tokenizer, require_reward_model
        require_reward_model(path, trust_remote_code)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, local_files_only=True, dtype=torch.float32, trust_remote_code=trust_remote_code)
        from .reward import load_prior
        info = Path(path) / "rm_info.json"
        max_length = read_json(info).get("config", {}).get("max_length", 192) if info.is_file() else 192
        model = model.to(device)
        load_prior(model, path, device, trust_remote_code, max_length)   # `reward.LikelihoodPrior`, when trained with one
        return cls(model, load_tokenizer(path, local_files_only=True, trust_remote_code=trust_remote_code),
                   max_length=max_length)

    def __call__(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        from .reward import score
        return score(self.model, self.tokenizer, prompts, responses, batch_size=self.batch_size,
                     max_length=self.max_length, format_prompts=self.format_prompts)


def gold_reward(prompts: list[str], responses: list[str]) -> torch.Tensor:
    """The world's gold utility as a reward (for experiments; ``minirlhf run`` never optimises it)."""
    from .world.gold import utility
    return torch.tensor([utility(p, r) for p, r in zip(prompts, responses)])


# ---------------------------------------------------------------------------- training

@dataclass
class PPOResult:
    history: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)   # the last rollout: prompt, response, score, gold
    seconds: float = 0.0
    policy: object = None
    value_model: object = None


def _save_state(ckpt_dir: Path, policy, value_model, tokenizer, optimizer, generator, iteration: int,
                beta: float, history: list[dict], config: PPOConfig) -> None:
    """Policy, value model, optimizer and RNG state in one folder, swapped in atomically."""
    from .io import write_dir_atomic

    def write(tmp: Path) -> None:
        policy.save_pretrained(tmp / "policy")
        tokenizer.save_pretrained(tmp / "policy")
        value_model.save_pretrained(tmp / "value")
        torch.save({"optimizer": optimizer.state_dict(), "generator": [g.get_state() for g in generator],
                    "iteration": iteration, "beta": beta}, tmp / "state.pt")
        (tmp / "history.json").write_text(json.dumps(history))
        (tmp / "config.json").write_text(json.dumps(asdict(config), indent=1))
    write_dir_atomic(ckpt_dir, write)


def _load_state(ckpt_dir: Path, policy, value_model, optimizer, generator) -> tuple[int, float, list[dict]]:
    ckpt_dir = Path(ckpt_dir)
    load_weights(policy, ckpt_dir / "policy")                   # all weights, or the LoRA adapters
    load_weights(value_model, ckpt_dir / "value")
    state = torch.load(ckpt_dir / "state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    for g, g_state in zip(generator, state["generator"]):
        g.set_state(g_state)
    return state["iteration"], state["beta"], json.loads((ckpt_dir / "history.json").read_text())


def _ptx_loss(policy, tokenizer, docs: list[str], device) -> torch.Tensor:
    """Mean next-token loss of the policy on corpus documents (PPO-ptx's pretraining term)."""
    from .evaluate import document_batch
    enc, labels = document_batch(tokenizer, docs, device)
    return policy(**enc, labels=labels).loss


def ppo_optimizer(models: list, lr: float, device: torch.device) -> torch.optim.AdamW:
    """One AdamW over the trainable weights of the policy and value model, eps 1e-5 ([N+], as
    TRL), fused on CPU and CUDA (one kernel for all the weights instead of one per tensor;
    `docs/speed.md` lists it); a test checks it trains as the plain one does."""
    params = [p for m in models for p in m.parameters() if p.requires_grad]
    return torch.optim.AdamW(params, lr=lr, eps=1e-5, fused=device.type in ("cpu", "cuda"))


def train_ppo(policy, ref_policy, value_model, reward_fn: Callable, tokenizer, prompts: list[str],
              config: PPOConfig = PPOConfig(), corpus: list[str] | None = None, callback: Callable | None = None,
              ckpt_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
              gold: bool | None = None, stop_after: int | None = None) -> PPOResult:
    """Run PPO: each iteration samples `batch_size` prompts, rolls out, scores, and updates.

    reward_fn(prompts, responses) -> (B,) scores, e.g. ``LearnedReward`` or ``gold_reward``.
    corpus: documents for PPO-ptx (needed when ``config.ptx_coef > 0``).
    callback(metrics, result) is called after every iteration (the live dashboard uses it).
    gold: also judge each rollout by the world's gold utility, logged as ``objective/gold`` and kept
    in the samples as ``gold`` (measured beside the reward, never optimised). None (the default):
    on when every prompt is one of the world's (`world_prompts`), off for your own.
    ckpt_dir: saved every ``config.save_every`` iterations; ``resume=True`` continues from it
    (pass the models as they were at the start: the checkpoint's weights are loaded into them).
    stop_after: end after this many iterations of this call (to simulate an interruption).
    With ``config.lora`` the policy and value model train adapters; the result's models have
    them merged (plain Hugging Face models) and ``ref_policy`` stays the frozen SFT model.
    """
    if config.ptx_coef > 0 and not corpus:
        raise ValueError("PPO-ptx (ptx_coef > 0) needs corpus documents")
    require_prompt_list(prompts)
    if not prompts:
        raise ValueError("PPO needs at least one prompt")
    if gold is None:
        gold = world_prompts(prompts)
    torch.manual_seed(config.seed)
    device = torch.device(config.device) if config.device else policy.device
    generator = torch.Generator().manual_seed(config.seed)                  # prompts, minibatches, ptx docs
    sampler = torch.Generator(device=device).manual_seed(config.seed + 1)   # rollouts, on the model's device
    for m in (policy, ref_policy, value_model):
        m.to(device)
    policy = for_training(policy, config.lora, config.gradient_checkpointing)
    value_model = for_training(value_model, config.lora, config.gradient_checkpointing, task="score")
    dropout_off(policy, ref_policy, value_model)
    fuse_activations(ref_policy)
    ref_policy.eval().requires_grad_(False)
    optimizer = ppo_optimizer([policy, value_model], config.lr, device)
    kl_ctl = AdaptiveKL(config.beta, config.kl_target, config.kl_horizon) if config.adaptive_kl else None
    result, start = PPOResult(), 0
    beta = config.beta
    if resume and ckpt_dir and (Path(ckpt_dir) / "state.pt").exists():
        start, beta, result.history = _load_state(Path(ckpt_dir), policy, value_model, optimizer,
                                                  (generator, sampler))
        if kl_ctl:
            kl_ctl.beta = beta
    end = config.iterations if stop_after is None else min(config.iterations, start + stop_after)
    passes = compiled_passes(config.compile)
    graphs = {}                                       # (prompt, answer length) -> StepGraph, with config.cuda_graphs
    t0 = time.perf_counter()
    bar = tqdm(total=config.iterations, initial=start, desc="PPO", disable=not progress)
    for it in range(start, end):
        t_it = time.perf_counter()
        idx = torch.randint(len(prompts), (config.batch_size,), generator=generator).tolist()
        batch_prompts = [prompts[i] for i in idx]
        metrics, samples = _iteration(policy, ref_policy, value_model, reward_fn, tokenizer, batch_prompts,
                                      config, beta, optimizer, (generator, sampler), corpus, gold, it, ckpt_dir,
                                      passes, graphs)
        if kl_ctl:
            beta = kl_ctl.update(metrics["objective/kl"], config.batch_size)
        metrics.update({"stage": "ppo", "step": it + 1, "episode": (it + 1) * config.batch_size,
                        "time/iteration_s": time.perf_counter() - t_it})
        result.history.append(metrics)
        result.samples = samples
        if ckpt_dir and config.save_every and (it + 1) % config.save_every == 0:
            _save_state(Path(ckpt_dir), policy, value_model, tokenizer, optimizer, (generator, sampler), it + 1, beta,
                        result.history, config)
        bar.update()
        bar.set_postfix(score=f"{metrics['objective/scores']:.2f}", kl=f"{metrics['objective/kl']:.2f}")
        if callback:
            callback(metrics, result)
    bar.close()
    policy, value_model = after_training(policy, value_model, gradient_checkpointing=config.gradient_checkpointing)
    result.seconds, result.policy, result.value_model = time.perf_counter() - t0, policy, value_model
    return result


def _non_finite(mask: torch.Tensor, **tensors) -> list[str]:
    """Names of the tensors holding a NaN or inf, and whether on response tokens or past the eos."""
    out = []
    for name, x in tensors.items():
        bad = ~torch.isfinite(x.detach().float())
        if x.dim() == 2 and bad.any():
            out.append(f"{name} ({int((bad & mask.bool()).sum())} on response tokens, "
                       f"{int((bad & ~mask.bool()).sum())} past the eos)")
        elif bad.any():
            out.append(f"{name} ({int(bad.sum())})")
    return out


def _minibatches(B: int, config: PPOConfig, generator: torch.Generator, n_docs: int) -> tuple[torch.Tensor, list]:
    """The rows of each minibatch, epoch after epoch (n, mini_batch_size), and the corpus documents
    of each for PPO-ptx (None without it), drawn from ``generator`` in the order the loop uses them."""
    rows, docs = [], []
    for _ in range(config.ppo_epochs):
        perm = torch.randperm(B, generator=generator)
        for s in range(0, B, config.mini_batch_size):
            rows.append(perm[s:s + config.mini_batch_size])
            docs.append(torch.randint(n_docs, (config.ptx_batch_size,), generator=generator).tolist()
                        if config.ptx_coef > 0 else None)
    return torch.stack(rows), docs


def _skipped_step_warning(it: int, skipped: int, steps: int, *models) -> None:
    """Say how many updates a NaN or inf gradient skipped (see backward_step_on_device), and
    which weights the last minibatch's gradient was non-finite in, if it was."""
    bad = [n for m in models for n, p in m.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    last = f"; the last one's in {len(bad)} weights ({', '.join(bad[:4])}{' ...' if len(bad) > 4 else ''})" if bad else ""
    warnings.warn(f"PPO iteration {it + 1}: {skipped} of {steps} minibatch updates skipped for non-finite "
                  f"gradients{last}", stacklevel=2)


def _label(name: str):
    """A named range for ``torch.profiler`` (``benchmarks/ppo_speed.py --profile`` sums time by it)."""
    return torch.profiler.record_function(name)


def use_cuda_graphs(config: PPOConfig, policy, value_model, dtype) -> bool:
    """Whether ``config.cuda_graphs`` (None: decide) records the minibatch update as a CUDA graph:
    on a GPU, for GPT-2 models that ``static_decoding.hidden_states`` runs (`plain_gpt2`), without
    LoRA, PPO-ptx, fp16's gradient scaler, compiled passes or gradient checkpointing. True on a CPU
    runs the same buffers and padding eagerly (for tests)."""
    if config.cuda_graphs is not None:
        return config.cuda_graphs
    return (policy.device.type == "cuda" and dtype != torch.float16 and config.lora is None
            and config.ptx_coef == 0 and not config.compile and not config.gradient_checkpointing
            and static_decoding.plain_gpt2(policy) and static_decoding.plain_gpt2(value_model))


def _pad_for_graphs(batch: dict, tokenizer, max_new_tokens: int) -> dict:
    """The rollout padded to shapes that repeat, so that a few recorded updates serve a whole run:
    prompts on the left to a multiple of 16 tokens, answers on the right to ``max_new_tokens``
    (pad tokens, log-prob and entropy 0; the answers all ended before, so no mask changes)."""
    right = max_new_tokens - batch["response_ids"].shape[1]
    prompt_ids, prompt_mask = _left_pad_to_16(batch["prompt_ids"], batch["prompt_mask"], tokenizer.pad_token_id)
    return {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask,
            "response_ids": F.pad(batch["response_ids"], (0, right), value=tokenizer.pad_token_id),
            "logprobs": F.pad(batch["logprobs"], (0, right)), "entropy": F.pad(batch["entropy"], (0, right))}


def _update(policy, value_model, optimizer, passes, mb: dict, config: PPOConfig, amp, scaler, with_entropy: bool,
            scale: torch.Tensor | None = None, ptx_docs: list[str] | None = None, tokenizer=None) -> dict:
    """One minibatch update: the policy's and value model's passes, their clipped losses (plus
    PPO-ptx's with ``ptx_docs``), backward, clip, AdamW. ``mb`` holds the minibatch's rows of the
    batch and of the rollout's statistics; ``scale`` multiplies the loss (`step_graph`'s warm-up).
    Returns the losses and statistics, detached. Nothing here waits for the device (PPO-ptx's
    tokenising and pass aside, and `backward_step_on_device`'s fallback for other optimizers)."""
    logprobs, values_fn = passes
    with amp():
        if with_entropy:
            logp, entropy = logprobs(policy, mb, mb["mask"], config.temperature, with_entropy=True)
        else:
            logp = logprobs(policy, mb, mb["mask"], config.temperature)
        values = values_fn(value_model, mb, mb["mask"])
    pg, pg_stats = policy_loss(logp, mb["old_logp"], mb["advantages"], mb["maskf"], config.cliprange)
    vf, vf_stats = value_loss(values, mb["old_values"], mb["returns"], mb["maskf"], config.cliprange_value)
    loss = pg + config.vf_coef * vf
    out = {"pg_loss": pg, "vf_loss": vf, "pg_clipfrac": pg_stats["clipfrac"], "vf_clipfrac": vf_stats["clipfrac"],
           "approxkl": pg_stats["approxkl"], "ratio": pg_stats["ratio"], "logp": logp, "values": values}
    if with_entropy:
        out["entropy"] = masked_mean(entropy, mb["maskf"])
    if ptx_docs is not None:
        with amp():
            out["ptx_loss"] = _ptx_loss(policy, tokenizer, ptx_docs, logp.device)
        loss = loss + config.ptx_coef * out["ptx_loss"]
    if scale is not None:
        loss = loss * scale
    params = [p for group in optimizer.param_groups for p in group["params"]]
    out["stepped"] = backward_step_on_device(loss, optimizer, params, config.max_grad_norm, scaler)   # no waiting
    out["loss"] = loss
    return {k: v.detach() for k, v in out.items()}


def _step_graph(graphs: dict, policy, value_model, optimizer, passes, config: PPOConfig, dtype, scaler,
                source: dict, rows: torch.Tensor) -> StepGraph:
    """The run's recorded update for the shapes of ``source`` (the batch), made at first use with
    its ``rows`` as the example minibatch; a few shapes at most, since each holds its activations'
    memory. Autocast's weight-cast cache stays off: a recording must not keep casts made outside it."""
    shape = (source["prompt_ids"].shape[1], source["response_ids"].shape[1])
    if shape not in graphs:
        if len(graphs) >= 4:
            graphs.pop(next(iter(graphs)))

        def amp():
            return torch.autocast(policy.device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None,
                                  cache_enabled=False)

        def update(mb: dict, scale: torch.Tensor) -> dict:
            return _update(policy, value_model, optimizer, passes, mb, config, amp, scaler, True, scale)

        graphs[shape] = StepGraph(update, {k: v[rows] for k, v in source.items()}, optimizer,
                                  graph=policy.device.type == "cuda")
    return graphs[shape]


def _iteration(policy, ref_policy, value_model, reward_fn, tokenizer, prompts, config, beta, optimizer,
               generators, corpus, gold, it, ckpt_dir, passes=(logprobs_of, values_of), graphs=None
               ) -> tuple[dict, list[dict]]:
    """One PPO iteration: rollout, score, advantages, then `ppo_epochs` passes of updates.
    ``passes``: the (possibly compiled) ``logprobs_of`` and ``values_of`` (`compiled_passes`);
    ``graphs``: the run's recorded minibatch updates by shape (`use_cuda_graphs`)."""
    generator, sampler = generators
    logprobs, values_fn = passes
    policy.eval()
    value_model.eval()
    dtype = amp_dtype(policy.device, config.bf16, config.fp16)
    amp = lambda: _autocast(policy.device, dtype)  # noqa: E731
    scaler = grad_scaler(policy.device, dtype)    # fp16 only; a pass-through otherwise
    graphed = graphs is not None and use_cuda_graphs(config, policy, value_model, dtype)
    minibatches, ptx_docs = _minibatches(len(prompts), config, generator, len(corpus or ()))
    minibatches = minibatches.to(policy.device)   # copied while the device is idle: later, nothing waits for it
    with torch.no_grad():
        with amp(), _label("ppo/rollout"):
            batch = rollout(policy, tokenizer, prompts, config.max_new_tokens, config.temperature, sampler,
                            config.format_prompts, compile=config.compile)
            if graphed:
                batch = _pad_for_graphs(batch, tokenizer, config.max_new_tokens)
        with amp(), _label("ppo/score"):
            old_logp, old_entropy = batch.pop("logprobs"), batch.pop("entropy")
            mask, has_eos = response_mask(batch["response_ids"], tokenizer.eos_token_id)
            if dtype is not None:  # bf16/fp16: the cached steps and one full pass can differ
                old_logp = logprobs(policy, batch, mask, config.temperature)
            ref_logp = logprobs(ref_policy, batch, mask, config.temperature)
            old_values = values_fn(value_model, batch, mask)
        with amp(), _label("ppo/reward"):   # a learned RM runs in the policy's precision too
            responses = decode_responses(tokenizer, batch["response_ids"], mask)
            scores = reward_scores(reward_fn, prompts, responses).to(old_logp.device)
        scores = scores - config.missing_eos_penalty * (~has_eos).float()
        maskf = mask.float()
        kl = torch.where(mask.bool(), kl_per_token(old_logp, ref_logp, config.kl_estimator), 0)
        rewards = token_rewards(scores, kl, maskf, beta)
        if config.whiten_rewards:
            rewards = whiten(rewards, maskf, shift_mean=False)
        advantages, returns = gae(rewards, old_values, maskf, config.gamma, config.lam)
        advantages = whiten(advantages, maskf)
    stats = {k: [] for k in ("pg_loss", "vf_loss", "pg_clipfrac", "vf_clipfrac", "approxkl", "ratio", "entropy",
                             "ptx_loss", "stepped", "loss", "logp", "values")}
    policy.train()
    value_model.train()
    source = {**batch, "mask": mask, "maskf": maskf, "old_logp": old_logp, "old_values": old_values,
              "advantages": advantages, "returns": returns}
    if graphed:
        step = _step_graph(graphs, policy, value_model, optimizer, passes, config, dtype, scaler, source,
                           minibatches[0])
    per_epoch = len(minibatches) // config.ppo_epochs
    for j, rows in enumerate(minibatches):
        with _label("ppo/update"):
            if graphed:                       # the entropy is measured on every pass; kept from the first
                out = step(source, rows)
            else:
                docs = None if ptx_docs[j] is None else [corpus[i] for i in ptx_docs[j]]
                out = _update(policy, value_model, optimizer, passes, {k: v[rows] for k, v in source.items()},
                              config, amp, scaler, j < per_epoch, ptx_docs=docs, tokenizer=tokenizer)
        if j >= per_epoch:
            out.pop("entropy", None)
        for name, val in out.items():
            stats[name].append(val)
    finite = torch.isfinite(torch.stack(stats["loss"]))   # the loop's first wait for the device
    if not finite.all():
        j = int((~finite).nonzero()[0, 0])
        where = f"; the last good checkpoint is {ckpt_dir}" if ckpt_dir else ""
        bad = _non_finite(mask, scores=scores, old_logp=old_logp, ref_logp=ref_logp, old_values=old_values,
                          advantages=advantages, returns=returns)
        bad += _non_finite(mask[minibatches[j]], logp=stats["logp"][j], values=stats["values"][j])
        raise PPOError(f"non-finite PPO loss at iteration {it + 1} (policy {stats['pg_loss'][j].item():.4g}, value "
                       f"{stats['vf_loss'][j].item():.4g}; non-finite: {', '.join(bad) or 'none of its inputs'}): "
                       f"lower lr (now {config.lr}) or raise beta{where}")
    skipped = int((~torch.stack(stats["stepped"])).sum())
    if skipped:
        _skipped_step_warning(it, skipped, len(minibatches), policy, value_model)
    avg = lambda key: torch.stack(stats[key]).mean().item() if stats[key] else float("nan")  # noqa: E731
    kl_sum = kl.sum(1)
    non_score = (-beta * kl).sum(1)
    metrics = {
        "objective/kl": kl_sum.mean().item(),
        "objective/entropy": torch.where(mask.bool(), old_entropy, 0).sum(1).mean().item(),
        "objective/non_score_reward": non_score.mean().item(),
        "objective/rlhf_reward": (scores + non_score).mean().item(),
        "objective/scores": scores.mean().item(),
        "objective/beta": beta,
        "policy/approxkl_avg": avg("approxkl"),
        "policy/clipfrac_avg": avg("pg_clipfrac"),
        "policy/entropy_avg": avg("entropy"),
        "loss/policy_avg": avg("pg_loss"),
        "loss/value_avg": avg("vf_loss"),
        "val/clipfrac_avg": avg("vf_clipfrac"),
        "val/ratio": avg("ratio"),
        "val/num_eos_tokens": int(has_eos.sum()),
        "policy/skipped_steps": skipped,
        "val/response_length": mask.sum(1).float().mean().item(),
    }
    if config.ptx_coef > 0:
        metrics["loss/ptx_avg"] = avg("ptx_loss")
    samples = [{"prompt": p, "response": r, "score": float(s)} for p, r, s in zip(prompts, responses, scores.tolist())]
    if gold:
        from .world.gold import utility
        golds = [utility(p, r) for p, r in zip(prompts, responses)]
        metrics["objective/gold"] = sum(golds) / len(golds)
        for sample, g in zip(samples, golds):
            sample["gold"] = g
    return metrics, samples


# ---------------------------------------------------------------------------- the stage end to end

def world_prompts(prompts: list) -> bool:
    """True when every prompt is one of the world's tasks (`world.prompts.parse_prompt` knows it),
    so that the gold judge can score the answers."""
    from .world.prompts import parse_prompt
    return all(isinstance(p, str) and parse_prompt(p).category != "unknown" for p in prompts)


def reward_scores(reward_fn: Callable, prompts: list[str], responses: list[str]) -> torch.Tensor:
    """``reward_fn(prompts, responses)`` as a float tensor of shape (B,): one score per response,
    or a ValueError that says what came back instead."""
    out = reward_fn(prompts, responses)                          # its own errors pass through as they are
    try:
        scores = torch.as_tensor(out, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"reward_fn must return one number per response (a list or tensor of {len(responses)}): "
                         f"{e}") from e
    if scores.dim() == 2 and scores.shape[1] == 1:               # a (B, 1) head output: one score each
        scores = scores[:, 0]
    if scores.shape != (len(responses),):
        raise ValueError(f"reward_fn returned scores of shape {tuple(scores.shape)} for {len(responses)} "
                         f"responses; it must return one number per response, shape ({len(responses)},)")
    return scores


def load_ppo_models(sft_path: str | Path, rm_path: str | Path, device: str = "cpu", trust_remote_code: bool = False,
                    seed: int = 0):
    """The four models: policy and reference from SFT, value model and reward from the RM.

    The value model reads the policy's tokens. When the reward model's tokenizer is another
    one (its vocabulary differs), the value model cannot start from it and starts from the SFT
    model with a new scalar head instead (`reward.reward_model_from`, drawn with ``seed``), with a warning.
    """
    from transformers import AutoModelForSequenceClassification

    from .generation import load_model
    reward = LearnedReward.load(rm_path, device, trust_remote_code)
    policy, tokenizer = load_model(sft_path, device, trust_remote_code)
    ref_policy, _ = load_model(sft_path, device, trust_remote_code)
    if reward.tokenizer.get_vocab() == tokenizer.get_vocab():
        value_model = AutoModelForSequenceClassification.from_pretrained(
            rm_path, local_files_only=True, dtype=torch.float32, trust_remote_code=trust_remote_code).to(device)
    else:
        from .reward import reward_model_from
        warnings.warn(f"the reward model at {rm_path} has another tokenizer than the policy at {sft_path}: the "
                      "value model starts from the SFT model with a new head instead of from the reward model",
                      stacklevel=2)
        value_model, _ = reward_model_from(sft_path, device, trust_remote_code, seed=seed)
    return policy, ref_policy, value_model, reward, tokenizer


@torch.no_grad()
def samples_and_kl(policy, ref_policy, tokenizer, prompts: list[str], temperature: float, max_new_tokens: int,
                   seed: int = 0, batch_size: int = 64) -> tuple[list[str], float]:
    """The policy's answers, the same as ``generation.generate`` gives for this seed and batch size,
    and CONTRACT's ``ppo.kl`` on them: the mean over prompts of
    sum_t log pi(y_t | x, y_<t) - log pi_SFT(y_t | x, y_<t)."""
    generator = torch.Generator(device=policy.device).manual_seed(seed)
    answers, total = [], 0.0
    for i in range(0, len(prompts), batch_size):
        batch = rollout(policy, tokenizer, prompts[i:i + batch_size], max_new_tokens, temperature, generator)
        mask, _ = response_mask(batch["response_ids"], tokenizer.eos_token_id)
        ref = logprobs_of(ref_policy, batch, mask, temperature)   # the policy's come with the rollout (fp32)
        total += ((batch["logprobs"] - ref) * mask).sum().item()
        answers += decode_responses(tokenizer, batch["response_ids"], mask)
    return answers, total / max(len(prompts), 1)


def run_ppo(sft_path: str | Path, rm_path: str | Path, out_dir: str | Path | None = None,
            config: PPOConfig | None = None, reward_fn: Callable | None = None, resume: bool = False,
            callback: Callable | None = None, progress: bool = True, stop_after: int | None = None,
            trust_remote_code: bool = False) -> dict:
    """Stage 3 on the world: PPO (or PPO-ptx) from SFT against the learned RM on the PPO prompts.

    ``reward_fn`` replaces the learned RM (any ``(prompts, responses) -> scores``); the value
    model still starts from the RM (from SFT when their tokenizers differ: `load_ppo_models`). Checkpoints go to ``out_dir/checkpoint`` and the final
    policy to ``out_dir/policy`` (Hugging Face format).
    """
    from .io import read_jsonl, save_checkpoint
    from .paths import world_dir
    config = config or PPOConfig()
    if config.device is None:
        from .settings import get_settings
        config = replace(config, device=get_settings().device)
    policy, ref_policy, value_model, learned, tokenizer = load_ppo_models(sft_path, rm_path, config.device,
                                                                          trust_remote_code, seed=config.seed)
    prompts = [r["prompt"] for r in read_jsonl(world_dir() / "ppo_prompts.jsonl", required=("prompt",))]
    corpus = None
    if config.ptx_coef > 0:
        corpus = [r["text"] for r in read_jsonl(world_dir() / "corpus.jsonl", required=("text",))]
    ckpt = Path(out_dir) / "checkpoint" if out_dir is not None else None
    result = train_ppo(policy, ref_policy, value_model, reward_fn or learned, tokenizer, prompts, config,
                       corpus=corpus, callback=callback, ckpt_dir=ckpt, resume=resume, progress=progress,
                       stop_after=stop_after)
    info = {"config": asdict(config), "seconds": result.seconds, "iterations": len(result.history),
            "reward": "learned RM" if reward_fn is None else getattr(reward_fn, "__name__", type(reward_fn).__name__)}
    if out_dir is not None and len(result.history) == config.iterations:
        save_checkpoint(result.policy, tokenizer, Path(out_dir) / "policy", "ppo_info.json", info)
    return {"history": result.history, "samples": result.samples, "info": info, "policy": result.policy,
            "ref_policy": ref_policy, "tokenizer": tokenizer, "reward": learned, "seconds": result.seconds}
