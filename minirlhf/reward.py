"""Stage 2: the reward model, trained on K-way rankings as in InstructGPT.

The reward model r(x, y) is the SFT model with its language-model head replaced by a
scalar head, read at the last token of prompt + response. Labelers rank K responses to
one prompt; every ranking gives C(K, 2) (winner, loser) pairs, and all pairs of one
prompt sit in the same batch element (the paper, section 3.5: treating them as separate
examples made the model overfit after one epoch):

    loss(theta) = -1/C(K,2) * E_{(x, y_w, y_l)} [ log sigmoid(r(x, y_w) - r(x, y_l)) ]

After training, rewards are shifted so the labelers' demonstrations score 0 on average
(the paper normalises the RM this way before RL).

Optionally (``RMConfig.likelihood_prior``, not the paper's) the reward adds what the SFT model
already knows, with two weights fitted on the same rankings (`LikelihoodPrior`):

    r(x, y) = head(x, y) + a * log pi_SFT(y | x) + b * |y|      (|y|: response tokens + end marker)
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .evaluate import outcome
from .lora import LoRAConfig
from .models import (after_training, amp_dtype, autocast, backward_step, cache_name, cache_of, completion_text,
                     dropout_off, for_training, fuse_activations, grad_scaler, prompt_text)
from .settings import require_positive


@dataclass
class RMConfig:
    """Reward-model training settings."""
    k: int = 4                 # responses ranked per prompt (the paper: 4 to 9)
    epochs: int = 6            # the paper trains one epoch on 33k prompts. The 1M-parameter RM on 7,440 ranked
                               # prompts (`minirlhf run`'s until it ranked twice as many) underfits at 2: 6 gave
                               # held-out gold accuracy 0.753, 0.732, 0.747 instead of 0.682, 0.695, 0.709 (seeds
                               # 0-2; 3x the stage's training time; benchmarks/rm_epochs.py, docs/reward_model.md).
                               # Real models keep 2 (`autopilot`);
                               # `minirlhf run`'s 14,880 ranked prompts take 4 (run.MORE_COMPARISONS_EPOCHS)
    batch_prompts: int = 8     # prompts per step; each brings its K responses and C(K,2) pairs
    lr: float = 3e-4           # tiny models take larger steps than the paper's 9e-6 for 6B
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1  # linear warm-up share of the steps, then cosine decay
    max_length: int = 192      # prompt + response tokens; the world's longest fit in ~120
    group_by_length: int = 16  # batches drawn from chunks of this many batches sorted by length: fewer
                               # pad tokens (HF Trainer's group_by_length); 1 = plain shuffled batches
    sample_temperature: float = 1.0  # diverse responses to rank (TRL samples at 0.7-1.0)
    max_new_tokens: int = 48   # = the evaluation's answer length
    heldout_fraction: float = 0.2  # comparison prompts kept for held-out accuracy
    max_prompts: int | None = None  # use only the first N comparison prompts (fast mode)
    more_prompts: int = 0      # N more training prompts of the world's mix beyond its 2,325 (found in none of
                               # its files; never held out). The paper ranked ~33k prompts; 5,580 more (4x the
                               # training prompts) gave +0.10 gold accuracy, seeds 0-2, for 3.8x the stage's time
                               # (docs/reward_model.md); 13,020 more: +0.03 / +0.06 / +0.04 again (seeds 0-2,
                               # "Twice the ranked prompts"). 0 here; `minirlhf run` sets 13,020 (run.MORE_COMPARISONS)
                               # A prompt may come twice (`new_prompts(repeats=True)`), so the mix stays the
                               # world's: distinct prompts left 4% questions about known people, and a reward
                               # model blind to their facts (docs/reward_model.md, "The world's mix")
    likelihood_prior: bool = False  # add a * log pi_SFT(y|x) + b * |y|, a and b fitted on the same rankings
                                    # (`LikelihoodPrior`; not the paper's): +0.03 against gold on the tiny world,
                                    # seeds 0-2 (docs/reward_model.md); `minirlhf run --rm-prior`
    calibrate_labelers: bool = True  # labelers' tau set so two of them agree on the paper's
                                     # 72.6% of these very pairs (else: world.json's tau)
    lora: LoRAConfig | None = None  # None: train every weight; LoRAConfig(): adapters + the head, merged after
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% slower
    share_prompts: bool = False  # compute each ranking's prompt once for its K responses (`encode_shared`): the
                                 # same rewards from fewer tokens (the world's prompts are longer than its
                                 # answers); `minirlhf run` turns it on with its 13,020 more comparisons
    bf16: bool | None = None   # bf16 autocast; None: on GPUs with native bf16, never on the CPU
    fp16: bool | None = None   # fp16 autocast + gradient scaling; None: on CUDA GPUs without bf16 (T4)
    seed: int = 0
    device: str | None = None  # None: the machine's GPU, else CPU (`settings.get_settings`)

    def __post_init__(self):
        require_positive(self, "k", "epochs", "batch_prompts", "max_length", "group_by_length", "max_new_tokens",
                         "more_prompts", allow_zero=("more_prompts",))
        if self.k < 2:
            raise ValueError(f"RMConfig.k must be at least 2 (a ranking compares K responses), not {self.k}")


# ---------------------------------------------------------------------------- losses

def pairwise_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """-mean log sigmoid(r(x, y_w) - r(x, y_l)) over pairs (the Bradley-Terry loss)."""
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def ranking_pairs(ranking: list[int]) -> list[tuple[int, int]]:
    """All C(K, 2) (winner, loser) pairs of a ranking given best first."""
    return [(ranking[i], ranking[j]) for i, j in combinations(range(len(ranking)), 2)]


def ranking_loss(rewards: torch.Tensor, rankings: list[list[int]]) -> torch.Tensor:
    """The K-way ranking loss of the paper, for a batch of prompts.

    rewards: (B, K) r(x_b, y_bk); rankings[b]: indices into K, best first.
    loss = mean_b [ -1/C(K,2) * sum_{(w, l) in pairs(b)} log sigmoid(r_bw - r_bl) ]
    """
    losses = []
    for r, ranking in zip(rewards, rankings):           # r: (K,)
        w, l = zip(*ranking_pairs(ranking))
        losses.append(pairwise_loss(r[list(w)], r[list(l)]))
    return torch.stack(losses).mean()


# ---------------------------------------------------------------------------- the model

def reward_model_from(path: str | Path, device: str = "cpu", trust_remote_code: bool = False, seed: int = 0):
    """A scalar-head model initialised from a causal LM checkpoint (e.g. SFT), fp32 weights.

    The new head is drawn from a normal with standard deviation 1/sqrt(d + 1) ("The N
    Implementation Details of RLHF with PPO", detail on reward-head init) so initial rewards are
    small and varied. It is drawn from its own generator seeded with ``seed`` (`fit_reward_model`
    passes ``RMConfig.seed``), so the same call gives the same head whatever ran before it.
    """
    from transformers import AutoModelForSequenceClassification

    from .models import load_tokenizer
    tokenizer = load_tokenizer(path, trust_remote_code)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32,
                                                               trust_remote_code=trust_remote_code)
    model.config.pad_token_id = tokenizer.pad_token_id
    head = model.score                       # GPT-2, Llama, Qwen ...: the scalar head is `score`
    d = head.weight.shape[1]
    with torch.no_grad():
        draw = torch.randn(tuple(head.weight.shape), generator=torch.Generator().manual_seed(seed))
        head.weight.copy_(draw / math.sqrt(d + 1))
    if head.bias is not None:
        torch.nn.init.zeros_(head.bias)
    return model.to(device), tokenizer


def encode(tokenizer, prompts: list[str], responses: list[str], max_length: int, format_prompts: bool = True) -> dict:
    """Right-padded prompt + response + eos; the score is read at the last real token.

    Prompts go through `prompt_text` (the world's format or the tokenizer's chat template)
    unless `format_prompts=False`. A pair longer than ``max_length`` tokens (end marker
    included) is cut so that the score still reads the response: the response keeps its start
    and at least half the room, the prompt keeps its end (`fit_pair`).
    """
    ids_p, ids_r = _token_ids(tokenizer, prompts, responses, format_prompts)
    rows = [fit_pair(p, r, max_length - 1) + [tokenizer.eos_token_id] for p, r in zip(ids_p, ids_r)]
    return _right_padded(rows, tokenizer.pad_token_id)


def _token_ids(tokenizer, prompts: list[str], responses: list[str], format_prompts: bool) -> tuple[list, list]:
    """Prompt and response token ids as the reward model reads them (`prompt_text`, `completion_text`)."""
    ids_p = tokenizer([prompt_text(tokenizer, p) if format_prompts else p for p in prompts],
                      add_special_tokens=False)["input_ids"]
    ids_r = tokenizer([completion_text(tokenizer, r) if format_prompts else " " + r for r in responses],
                      add_special_tokens=False)["input_ids"]
    return ids_p, ids_r


def _right_padded(rows: list[list[int]], pad_id: int) -> dict:
    """``input_ids`` right-padded with ``pad_id`` and their ``attention_mask``."""
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad_id)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = torch.tensor(row), 1
    return {"input_ids": ids, "attention_mask": mask}


def fit_pair(prompt_ids: list[int], response_ids: list[int], room: int) -> list[int]:
    """Prompt + response in at most ``room`` tokens. Nothing is cut when they fit. Otherwise the
    response keeps its first tokens, as many as fit beside the prompt but at least half the room,
    and the prompt keeps its last tokens (the question sits at its end), so a long prompt never
    pushes the answer out of what the reward model reads."""
    keep_p, keep_r = _kept(len(prompt_ids), len(response_ids), room)
    return prompt_ids[len(prompt_ids) - keep_p:] + response_ids[:keep_r]


def _kept(n_prompt: int, n_response: int, room: int) -> tuple[int, int]:
    """How many prompt and response tokens `fit_pair` keeps."""
    if n_prompt + n_response <= room:
        return n_prompt, n_response
    keep_r = min(n_response, room - min(n_prompt, room // 2))
    return room - keep_r, keep_r


def encode_shared(tokenizer, prompts: list[str], responses: list[list[str]], max_length: int,
                  format_prompts: bool = True) -> dict | None:
    """One ranking's prompt once, its K responses after it: what `shared_rewards` reads.

    ``prompt``: the B prompts, right-padded; ``response``: every prompt's responses + eos, right-padded,
    each row's attention mask its prompt's mask then its own, its positions going on from its prompt's
    length. The same tokens as `encode` of every (prompt, response) pair, with each prompt's tokens computed
    once instead of K times. None when a pair would be cut (`fit_pair`), or when an empty response would be
    read at a pad (pad = eos): `encode` then.
    """
    ks = [len(ys) for ys in responses]
    ids_p, ids_r = _token_ids(tokenizer, prompts, [y for ys in responses for y in ys], format_prompts)
    which = torch.repeat_interleave(torch.arange(len(ks)), torch.tensor(ks))     # each response's prompt
    rows = [r + [tokenizer.eos_token_id] for r in ids_r]
    if any(len(ids_p[b]) + len(r) > max_length for b, r in zip(which.tolist(), rows)):
        return None
    if tokenizer.pad_token_id == tokenizer.eos_token_id and not all(ids_r):
        return None
    prompt, response = _right_padded(ids_p, tokenizer.pad_token_id), _right_padded(rows, tokenizer.pad_token_id)
    width_p, width_r = prompt["input_ids"].shape[1], response["input_ids"].shape[1]
    lengths = prompt["attention_mask"].sum(1)
    prompt["position_ids"] = torch.arange(width_p).expand(len(ks), width_p)
    response["attention_mask"] = torch.cat([prompt["attention_mask"][which], response["attention_mask"]], 1)
    response["position_ids"] = lengths[which, None] + torch.arange(width_r)
    return {"prompt": prompt, "response": response, "which": which}


def shared_rewards(model, batch: dict) -> torch.Tensor:
    """r(x, y) of `encode_shared`'s pairs: the prompts through the model once (their keys and values kept),
    then each response attending to its prompt's: (sum K,), as `rewards_of` on `encode`'s pairs."""
    device = model.device
    cache = cache_of(model(**{k: v.to(device) for k, v in batch["prompt"].items()}, use_cache=True))
    cache.batch_select_indices(batch["which"].to(device))                          # K copies of each prompt's
    out = model(**{k: v.to(device) for k, v in batch["response"].items()}, use_cache=True, **{cache_name(model): cache})
    return out.logits.squeeze(-1) - getattr(model.config, "reward_offset", 0.0)


def ranking_rewards(model, tokenizer, batch: list[dict], max_length: int, share_prompts: bool = True) -> torch.Tensor:
    """r(x, y) of every response of the rankings in ``batch``, ranking after ranking: (sum K,). With
    ``share_prompts`` each prompt is computed once (`encode_shared`) where it can be, else every pair whole."""
    responses = [list(b["responses"]) for b in batch]
    shared = encode_shared(tokenizer, [b["prompt"] for b in batch], responses, max_length) if share_prompts else None
    if shared is not None:
        return shared_rewards(model, shared)
    prompts = [b["prompt"] for b in batch for _ in b["responses"]]
    return rewards_of(model, encode(tokenizer, prompts, [y for ys in responses for y in ys], max_length))


def rewards_of(model, batch: dict) -> torch.Tensor:
    """r(x, y) at each sequence's last real token: (N,)."""
    out = model(**{k: v.to(model.device) for k, v in batch.items()})
    return out.logits.squeeze(-1) - getattr(model.config, "reward_offset", 0.0)


@torch.no_grad()
def score(model, tokenizer, prompts: list[str], responses: list[str], batch_size: int = 64,
          max_length: int = 192, format_prompts: bool = True) -> torch.Tensor:
    """Normalised rewards for (prompt, response) texts: (N,) on the CPU."""
    fuse_activations(model).eval()
    out = [rewards_of(model, encode(tokenizer, prompts[i:i + batch_size], responses[i:i + batch_size], max_length,
                                    format_prompts))
           for i in range(0, len(prompts), batch_size)]
    r = torch.cat(out).float().cpu() if out else torch.zeros(0)
    prior = getattr(model, "likelihood_prior", None)      # attached by `attach_prior` / `load_prior`
    if isinstance(prior, LikelihoodPrior) and len(r):
        r = r + prior(prompts, responses, format_prompts)
    return r


# ---------------------------------------------------------------------------- the likelihood prior

@torch.no_grad()
def response_logliks(lm, tokenizer, prompts: list[str], responses: list[str], max_length: int = 192,
                     format_prompts: bool = True, batch_size: int = 64) -> torch.Tensor:
    """(N, 2) on the CPU: sum_t log pi(y_t | x, y_<t) over each response's tokens and end marker under
    the causal LM ``lm``, and how many tokens that is, on the very tokens the reward model reads
    (`encode`'s formatting and cut)."""
    ids_p, ids_r = _token_ids(tokenizer, prompts, responses, format_prompts)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = []
    for i in range(0, len(ids_p), batch_size):
        rows, spans = [], []
        for p, r in zip(ids_p[i:i + batch_size], ids_r[i:i + batch_size]):
            keep_p, keep_r = _kept(len(p), len(r), max_length - 1)
            rows.append(fit_pair(p, r, max_length - 1) + [tokenizer.eos_token_id])
            spans.append((keep_p, keep_p + keep_r + 1))        # response tokens and the end marker
        batch = _right_padded(rows, pad)
        ids, mask = batch["input_ids"].to(lm.device), batch["attention_mask"].to(lm.device)
        logp = lm(input_ids=ids, attention_mask=mask).logits.float().log_softmax(-1)
        token = logp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0].cpu()     # log p of token t+1 at position t
        for j, (start, end) in enumerate(spans):
            out.append([token[j, max(start - 1, 0):end - 1].sum().item(), float(end - start)])
    return torch.tensor(out, dtype=torch.float64).reshape(-1, 2)


class LikelihoodPrior:
    """``a * log pi_SFT(y|x) + b * |y|``: what the SFT model already knows, as a reward term.

    Not in the paper. A 1M-parameter reward model trained on ~2,000 ranked prompts forgets what its
    SFT initialisation knew: that a person's job is "baker", that a poem about a plum mentions
    plums. The SFT model's log-likelihood of an answer still knows it, and answer length is what
    the labelers' concision shows up as. Two weights, fitted on the same rankings as the head
    (`fit`), turn them into a reward term that the reward model adds to its head (`score`).
    """

    def __init__(self, lm, tokenizer, a: float = 0.0, b: float = 0.0, max_length: int = 192):
        self.lm, self.tokenizer, self.a, self.b, self.max_length = lm.eval(), tokenizer, a, b, max_length

    def features(self, prompts: list[str], responses: list[str], format_prompts: bool = True) -> torch.Tensor:
        """(N, 2): log pi_SFT(y|x) and |y| (`response_logliks`)."""
        return response_logliks(self.lm, self.tokenizer, prompts, responses, self.max_length, format_prompts)

    def __call__(self, prompts: list[str], responses: list[str], format_prompts: bool = True) -> torch.Tensor:
        f = self.features(prompts, responses, format_prompts)
        return (self.a * f[:, 0] + self.b * f[:, 1]).float()

    def fit(self, rankings: list[dict]) -> "LikelihoodPrior":
        """a, b by maximum likelihood of the rankings' (winner, loser) pairs under Bradley-Terry:
        max sum log sigmoid(a * (L_w - L_l) + b * (n_w - n_l)), the reward model's own loss."""
        rows = load_rankings(rankings)
        f = self.features([r["prompt"] for r in rows for _ in r["responses"]], [y for r in rows for y in r["responses"]])
        diffs, start = [], 0
        for r in rows:
            diffs += [f[start + w] - f[start + l] for w, l in ranking_pairs(r["ranking"])]
            start += len(r["responses"])
        x = torch.stack(diffs)
        w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = -F.logsigmoid(x @ w).mean()
            loss.backward()
            return loss
        opt.step(closure)
        self.a, self.b = (round(float(v), 6) for v in w.detach())
        return self


def attach_prior(model, prior: LikelihoodPrior, reference: str) -> None:
    """Make ``prior`` part of reward model ``model``: `score` adds it, and the model's config records
    its weights and ``reference`` (the SFT model's folder, relative to the reward model's own) so that
    `load_prior` finds it again."""
    model.likelihood_prior = prior
    model.config.likelihood_prior = {"a": prior.a, "b": prior.b, "reference": reference}


def load_prior(model, rm_dir: str | Path, device: str = "cpu", trust_remote_code: bool = False,
               max_length: int = 192) -> None:
    """Attach the likelihood prior a saved reward model was trained with, if any (its config says)."""
    saved = getattr(model.config, "likelihood_prior", None)
    if not saved:
        return
    from .generation import load_model
    ref = Path(saved["reference"])
    ref = ref if ref.is_absolute() else Path(rm_dir) / ref
    if not (ref / "config.json").is_file():
        raise FileNotFoundError(f"the reward model at {rm_dir} adds a likelihood prior from the SFT model at {ref}, "
                                "which is not there (no config.json): keep the SFT model where it was")
    lm, tokenizer = load_model(ref, device, trust_remote_code)
    model.likelihood_prior = LikelihoodPrior(lm, tokenizer, saved["a"], saved["b"], max_length)


# ---------------------------------------------------------------------------- data

def load_rankings(data) -> list[dict]:
    """Rankings from K-way rows (``prompt``, ``responses``, ``ranking``: indices best first) or
    pairs (``prompt``, ``chosen``, ``rejected``) in a JSONL path, a list of dicts or a Dataset.

    Conversational pairs as TRL and the hub write them are read too (`conversational_pair`):
    ``chosen`` and ``rejected`` are chats of ``{"role", "content"}`` messages ending in the
    assistant's answer, with or without a ``prompt`` column (without one, the turns they share
    are the prompt).
    """
    from .io import DataError, read_jsonl, require_columns, require_table
    source = str(data) if isinstance(data, (str, Path)) else "dataset"
    if not isinstance(data, (str, Path)):
        require_table(data, source)
    rows = read_jsonl(data) if isinstance(data, (str, Path)) else [dict(r) for r in data]
    if not rows:
        raise DataError(f"{source}: no rows (an empty dataset cannot train a reward model)")
    chat = isinstance(rows[0].get("chosen"), list)
    if chat:
        require_columns(rows, ("chosen", "rejected"), source)
        rows = [conversational_pair(r, f"{source}, row {i}") for i, r in enumerate(rows, 1)]
    pairwise = "chosen" in rows[0]
    columns = ("prompt", "chosen", "rejected") if pairwise else ("prompt", "responses", "ranking")
    if isinstance(data, (str, Path)) and not chat:
        read_jsonl(data, required=columns)           # errors name the file and line
    require_columns(rows, columns, source)
    for i, r in enumerate(rows, 1):
        _check_types(r, pairwise, f"{source}, row {i}")
    if pairwise:
        return [{"prompt": r["prompt"], "responses": [r["chosen"], r["rejected"]], "ranking": [0, 1]} for r in rows]
    for i, r in enumerate(rows, 1):
        if sorted(r["ranking"]) != list(range(len(r["responses"]))) or len(r["responses"]) < 2:
            raise DataError(f"{source}, row {i}: 'ranking' must order all {len(r['responses'])} responses by their "
                            f"0-based indices, best first (got {r['ranking']})")
    return rows


def _is_chat(value) -> bool:
    """A non-empty list of ``{"role", "content"}`` messages."""
    return isinstance(value, list) and bool(value) and all(
        isinstance(m, dict) and {"role", "content"} <= m.keys() for m in value)


def conversational_pair(row: dict, where: str) -> dict:
    """A chat-format pair as ``prompt``, ``chosen`` and ``rejected`` texts, or DataError naming ``where``.

    ``chosen`` and ``rejected`` are lists of ``{"role", "content"}`` messages that end in the
    assistant's answer and agree on the turns before it. Those turns, after the row's
    ``prompt`` when it has one (a text or a chat), are the prompt: one user message as its
    text, a longer chat as the list of its messages.
    """
    from .io import DataError
    chosen, rejected, prompt = row["chosen"], row["rejected"], row.get("prompt", [])
    if not (_is_chat(chosen) and _is_chat(rejected)) or chosen[-1]["role"] != "assistant" \
            or rejected[-1]["role"] != "assistant" or chosen[:-1] != rejected[:-1] \
            or not (isinstance(prompt, str) or prompt == [] or _is_chat(prompt)):
        raise DataError(f"{where}: a chat-format pair needs 'chosen' and 'rejected' as lists of {{'role', 'content'}} "
                        "messages with the same turns before a last, assistant, turn (and 'prompt', if there, "
                        "a text or such a list)")
    turns = ([{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)) + chosen[:-1]
    text = turns[0]["content"] if len(turns) == 1 and turns[0]["role"] == "user" else turns
    return {"prompt": text, "chosen": chosen[-1]["content"], "rejected": rejected[-1]["content"]}


def _check_types(row: dict, pairwise: bool, where: str) -> None:
    """DataError naming ``where`` and the field unless the row's texts are strings (the prompt may be a
    chat: a list of messages) and its ranking integers."""
    from .io import DataError
    texts = {"prompt": "" if _is_chat(row["prompt"]) else row["prompt"]}   # a chat: `prompt_text` renders it
    if pairwise:
        texts.update(chosen=row["chosen"], rejected=row["rejected"])
    elif not isinstance(row["responses"], list) or not isinstance(row["ranking"], list) \
            or not all(isinstance(j, int) and not isinstance(j, bool) for j in row["ranking"]):
        raise DataError(f"{where}: 'responses' must be a list of texts and 'ranking' a list of their indices")
    else:
        texts.update({f"responses[{j}]": y for j, y in enumerate(row["responses"])})
    for name, value in texts.items():
        if not isinstance(value, str):
            raise DataError(f"{where}: {name!r} must be a text, not {type(value).__name__}")


def sample_comparisons(policy, tokenizer, prompts: list[str], config: RMConfig, seed: int = 0,
                       k: int | None = None) -> list[dict]:
    """K samples from the policy per prompt (``k``, else ``config.k``), with their gold utilities (not yet ranked)."""
    from .generation import generate
    from .world.gold import utility
    k = k or config.k
    repeated = [p for p in prompts for _ in range(k)]
    responses = generate(policy, tokenizer, repeated, max_new_tokens=config.max_new_tokens,
                         temperature=config.sample_temperature, seed=seed)
    rows = []
    for i, prompt in enumerate(prompts):
        ys = responses[i * k:(i + 1) * k]
        rows.append({"prompt": prompt, "responses": ys, "utilities": [utility(prompt, y) for y in ys]})
    return rows


def new_prompts(n: int, seed: int = 0, stream: int = 1_000, field: str = "RMConfig.more_prompts",
                repeats: bool = False) -> list[str]:
    """``n`` prompts drawn from the world's category mix that are in none of its prompt or demonstration
    files, so never among the held-out comparisons or the evaluation prompts. ``repeats``: a prompt may
    be drawn again, as users ask the same thing twice, and the categories keep the world's mix; else every
    prompt is distinct and the mix tilts to passage tasks, whose prompt space is the largest (questions
    about the world's known people run out: 4% of 3,000 instead of 10%). ``stream`` picks the random
    stream (the reward model's comparisons 1,000, `sft.more_demonstrations` 2,000); raises ValueError,
    naming ``field``, when the world has fewer than ``n`` left."""
    from .io import read_jsonl
    from .paths import world_dir
    from .world.prompts import sample_prompt
    used = {r["prompt"] for f in sorted(world_dir().glob("*_prompts.jsonl")) for r in read_jsonl(f)}
    used |= {r["prompt"] for f in ("demonstrations.jsonl", "demonstrations_val.jsonl") for r in read_jsonl(world_dir() / f)}
    rng, new, misses = random.Random(stream + seed), [], 0
    seen = set()
    while len(new) < n and misses < 20_000:          # 20,000 draws in a row with nothing new: the world is out
        prompt = sample_prompt(rng)
        if prompt in used or (prompt in seen and not repeats):
            misses += 1
        else:
            new.append(prompt)
            seen.add(prompt)
            misses = 0
    if len(new) < n:
        raise ValueError(f"{field}: the world has only {len(new)} more prompts to offer, not {n}")
    return new


def inversions(row: dict) -> list[tuple[int, int]]:
    """The (winner, loser) pairs of a ranked row that gold orders the other way (gold ties are not counted)."""
    u = row["utilities"]
    return [(w, l) for w, l in ranking_pairs(row["ranking"]) if u[w] < u[l]]


def rank_comparisons(rows: list[dict], labeler) -> list[dict]:
    """Each row ranked by a (simulated) labeler, best first."""
    return [dict(row, ranking=labeler.rank(row["utilities"])) for row in rows]


def _device(config: RMConfig) -> str:
    """``config.device``, else the machine's GPU or CPU (`settings.get_settings`)."""
    from .settings import get_settings
    return config.device or get_settings().device


def comparison_prompts(config: RMConfig) -> list[str]:
    """The world's comparison prompts the RM stage uses: the first ``config.max_prompts`` (all when None)."""
    from .io import read_jsonl
    from .paths import world_dir
    prompts = [r["prompt"] for r in read_jsonl(world_dir() / "comparison_prompts.jsonl", required=("prompt",))]
    return prompts[:config.max_prompts]


def split_heldout(prompts: list[str], fraction: float) -> tuple[list[str], list[str]]:
    """(held-out, training) prompts: the first ``fraction`` of them are held out."""
    n_held = int(len(prompts) * fraction)
    return prompts[:n_held], prompts[n_held:]


def draw_comparisons(policy, tokenizer, prompts: list[str], config: RMConfig, tau: float, train: bool = True) -> dict:
    """The RM stage's comparisons: the first ``heldout_fraction`` of ``prompts`` held out, K samples
    of ``policy`` per prompt (``train=False``: the held-out ones only), the labelers' ``tau``
    calibrated on these pairs when ``config.calibrate_labelers``, and every row ranked by a labeler.
    ``config.more_prompts`` new prompts (`new_prompts`) are sampled and ranked for training too.

    Returns ``train_rows`` and ``held_rows`` (with gold ``utilities``), ``tau``, their labeler
    rankings ``rankings`` and ``heldout`` (`fresh_labeler` gives the labeler that judges held-out accuracy).
    """
    from .world.labelers import Labeler
    held, rest = split_heldout(prompts, config.heldout_fraction)
    train_rows = sample_comparisons(policy, tokenizer, rest, config, seed=config.seed + 1) if train else []
    held_rows = sample_comparisons(policy, tokenizer, held, config, seed=config.seed + 2)
    if config.calibrate_labelers:
        tau = calibrate_tau(train_rows or held_rows)
    more = more_comparisons(policy, tokenizer, config, tau) if train and config.more_prompts else []
    return {"train_rows": train_rows + more, "held_rows": held_rows, "tau": tau,
            "rankings": rank_comparisons(train_rows, Labeler(tau, seed=10 * config.seed + 1)) + more,
            "heldout": rank_comparisons(held_rows, Labeler(tau, seed=10 * config.seed + 2))}


def more_comparisons(policy, tokenizer, config: RMConfig, tau: float) -> list[dict]:
    """K samples of ``policy`` on ``config.more_prompts`` `new_prompts` of the world's mix (a prompt may come
    twice), ranked by a labeler of ``tau``."""
    from .world.labelers import Labeler
    prompts = new_prompts(config.more_prompts, config.seed, repeats=True)
    rows = sample_comparisons(policy, tokenizer, prompts, config, seed=config.seed + 3)
    return rank_comparisons(rows, Labeler(tau, seed=10 * config.seed + 4))


def policy_comparisons(sft, policy, tokenizer, prompts: list[str], config: RMConfig, tau: float,
                       round_no: int = 2) -> list[dict]:
    """Comparisons for the next round of steps 2 and 3 (the paper, section 3.1: "more comparison data is
    collected on the current best policy, which is used to train a new RM and then a new policy").

    Each prompt gets K // 2 answers of ``policy`` and K - K // 2 new samples of ``sft`` (the same
    tokenizer) in one ranking, so that what the policy learned to say ("I'm not sure", a polite opening
    and nothing else) is ranked against what the SFT model says, by a labeler of ``tau`` that ranked
    nothing before. ``round_no`` (2, 3, ...) gives every round its own samples and labeler.
    """
    from .world.labelers import Labeler
    seed, shift = config.seed, 1000 * (round_no - 2)
    a = sample_comparisons(policy, tokenizer, prompts, config, seed=seed + 11 + shift, k=config.k // 2)
    b = sample_comparisons(sft, tokenizer, prompts, config, seed=seed + 12 + shift, k=config.k - config.k // 2)
    rows = [{"prompt": x["prompt"], "responses": x["responses"] + y["responses"],
             "utilities": x["utilities"] + y["utilities"]} for x, y in zip(a, b)]
    return rank_comparisons(rows, Labeler(tau, seed=10 * seed + 5 + shift))


def fresh_labeler(tau: float, config: RMConfig):
    """A labeler independent of the ones that ranked `draw_comparisons`. Each call returns a new
    one with the same seed, so the same rankings get the same labels on every call."""
    from .world.labelers import Labeler
    return Labeler(tau, seed=10 * config.seed + 3)


def utility_pairs(rows: list[dict]) -> list[tuple[float, float]]:
    """The gold utilities of every pair of responses to the same prompt."""
    return [(row["utilities"][a], row["utilities"][b]) for row in rows
            for a, b in combinations(range(len(row["responses"])), 2)]


def calibrate_tau(rows: list[dict]) -> float:
    """The labelers' tau at which two of them agree on 72.6% of these rows' pairs.

    The paper measured its labelers' agreement on the comparisons they actually labeled;
    pairs of one policy's samples are often close calls, so the noise is set on them.
    """
    from .world.labelers import fit_tau
    return fit_tau(utility_pairs(rows))


# ---------------------------------------------------------------------------- training

def length_grouped_batches(lengths: list[int], batch_size: int, rng: random.Random, group: int = 16) -> list[list[int]]:
    """Shuffled batches of indices whose members have similar lengths, so few pad tokens are computed.

    The shuffled order is cut into chunks of ``group`` batches; each chunk is sorted by length
    and cut into batches; the batches are shuffled again (Hugging Face Trainer's
    ``group_by_length`` works the same way). ``group=1`` gives plain shuffled batches.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * max(group, 1)
    batches = []
    for i in range(0, len(order), chunk):
        part = sorted(order[i:i + chunk], key=lengths.__getitem__) if group > 1 else order[i:i + chunk]
        batches += [part[j:j + batch_size] for j in range(0, len(part), batch_size)]
    if group > 1:
        rng.shuffle(batches)
    return batches


@dataclass
class RMResult:
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    model: object = None


def ranking_optimizer(model, config, total: int) -> tuple:
    """AdamW on ``model``'s trainable weights (``config.lr``, ``config.weight_decay``) and its schedule, for the
    trainers of the ranking loss (the reward model, `dpo`): a linear warm-up over ``config.warmup_ratio`` of
    the ``total`` steps, times a cosine decay over all of them."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                            weight_decay=config.weight_decay)
    warmup = max(1, int(total * config.warmup_ratio))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    return opt, sched


def train_reward_model(model, tokenizer, rankings: list[dict], config: RMConfig = RMConfig(),
                       progress: bool = True) -> RMResult:
    """Train on rankings with the K-way loss; one batch element = one prompt's K responses.

    ``rankings`` is anything `load_rankings` reads (K-way rows or chosen/rejected pairs; a JSONL
    path, a list of dicts or a Dataset), checked by it. With `config.lora` only adapters and the
    scalar head train; the returned model (`RMResult.model`) has them merged into its weights.
    """
    rankings = load_rankings(rankings)
    torch.manual_seed(config.seed)
    order_rng = random.Random(config.seed)
    steps_per_epoch = math.ceil(len(rankings) / config.batch_prompts)
    total = steps_per_epoch * config.epochs
    model = for_training(model, config.lora, config.gradient_checkpointing, task="score")
    dtype = amp_dtype(model.device, config.bf16, config.fp16)
    scaler = grad_scaler(model.device, dtype)
    opt, sched = ranking_optimizer(model, config, total)
    dropout_off(model.train())
    share = config.share_prompts and not config.gradient_checkpointing   # checkpointing keeps no keys and values
    result, t0, step = RMResult(), time.perf_counter(), 0
    bar = tqdm(total=total, desc="reward model", disable=not progress)
    lengths = [len(str(r["prompt"])) + max(map(len, r["responses"])) for r in rankings]  # characters: a proxy
    for _ in range(config.epochs):
        for batch_ids in length_grouped_batches(lengths, config.batch_prompts, order_rng,
                                                config.group_by_length):
            batch = [rankings[j] for j in batch_ids]
            with autocast(model.device, dtype):
                r = ranking_rewards(model, tokenizer, batch, config.max_length, share).float()   # (sum K,)
            loss, acc, start = [], [], 0
            for b in batch:
                k = len(b["responses"])
                loss.append(ranking_loss(r[start:start + k][None], [b["ranking"]]))
                w, l = zip(*ranking_pairs(b["ranking"]))
                acc.append((r[start:start + k][list(w)] > r[start:start + k][list(l)]).float().mean())
                start += k
            loss = torch.stack(loss).mean()
            backward_step(loss, opt, model.parameters(), 1.0, scaler)
            sched.step()
            step += 1
            result.history.append({"stage": "rm", "step": step, "loss": loss.item(),
                                   "accuracy": torch.stack(acc).mean().item(), "lr": sched.get_last_lr()[0]})
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model, = after_training(model, gradient_checkpointing=config.gradient_checkpointing)
    result.seconds, result.model = time.perf_counter() - t0, model
    return result


def normalise(model, tokenizer, demonstrations: list[dict], max_length: int = 192) -> float:
    """Shift rewards so the labelers' demonstrations score 0 on average; returns the shift."""
    model.config.reward_offset = 0.0
    r = score(model, tokenizer, [d["prompt"] for d in demonstrations], [d["completion"] for d in demonstrations],
              max_length=max_length)
    model.config.reward_offset = float(r.mean())
    return model.config.reward_offset


# ---------------------------------------------------------------------------- evaluation

def heldout_scores(model, tokenizer, heldout: list[dict], max_length: int = 192) -> list[float]:
    """The RM's score of every held-out response, row after row."""
    prompts = [row["prompt"] for row in heldout for _ in row["responses"]]
    responses = [y for row in heldout for y in row["responses"]]
    return score(model, tokenizer, prompts, responses, max_length=max_length).tolist()


def evaluate(model, tokenizer, heldout: list[dict], fresh_labeler, max_length: int = 192,
             scores: list[float] | None = None) -> dict:
    """Held-out accuracy against a fresh labeler draw and against the noise-free gold.

    ``heldout`` rows carry ``utilities`` (gold U of each response). RM ties count 1/2.
    ``scores``: ``heldout_scores`` already computed (else they are computed here).
    """
    r = scores if scores is not None else heldout_scores(model, tokenizer, heldout, max_length)
    lab_hits, gold_hits, margins, chosen, rejected, ties, n_pairs, start = [], [], [], [], [], 0, 0, 0
    for row in heldout:
        k = len(row["responses"])
        rk, us = r[start:start + k], row["utilities"]
        for w, l in ranking_pairs(fresh_labeler.rank(us)):
            lab_hits.append(outcome(rk[w], rk[l]))
            margins.append(rk[w] - rk[l])
            chosen.append(rk[w])
            rejected.append(rk[l])
            n_pairs += 1
            if us[w] == us[l]:
                ties += 1
            else:
                better, worse = (w, l) if us[w] > us[l] else (l, w)
                gold_hits.append(outcome(rk[better], rk[worse]))
        start += k
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    return {"accuracy_labelers": round(mean(lab_hits), 4), "accuracy_gold": round(mean(gold_hits), 4),
            "gold_tie_share": round(ties / max(n_pairs, 1), 4), "margin": round(mean(margins), 4),
            "n_pairs": n_pairs, "chosen_rewards": chosen, "rejected_rewards": rejected}


def accuracy_on_policy(model, tokenizer, policy, policy_tokenizer, prompts: list[str], tau: float,
                       config: RMConfig, seed: int = 0) -> dict:
    """The RM's accuracy on another policy's answers (issue: "its accuracy on samples from a later
    PPO policy"): K samples of ``policy`` per prompt (use the RM stage's held-out comparison
    prompts), pairs ranked by a fresh labeler draw and by gold, as in `evaluate`.

    The RM was trained on SFT samples; a policy optimised against it drifts to answers it has
    not seen, where it may be less accurate (on the tiny world it is not: docs/reward_model.md).
    """
    rows = sample_comparisons(policy, policy_tokenizer, prompts, config, seed=seed)
    m = evaluate(model, tokenizer, rows, fresh_labeler(tau, config), config.max_length)
    return {k: m[k] for k in ("accuracy_gold", "accuracy_labelers", "gold_tie_share", "n_pairs")}


def save_reward_model(model, tokenizer, out_dir: str | Path, info: dict) -> Path:
    """Save in Hugging Face format with ``rm_info.json``, atomically. The normalisation is in the
    model's config as ``reward_offset``: minirlhf subtracts it (`rewards_of`, `ppo.LearnedReward`);
    a plain ``AutoModelForSequenceClassification.from_pretrained`` returns the logits without it."""
    from .io import save_checkpoint
    return save_checkpoint(model, tokenizer, out_dir, "rm_info.json", info)


def fit_reward_model(init_path: str | Path, rankings: list[dict], heldout: list[dict], tau: float, config: RMConfig,
                     out_dir: str | Path | None = None, progress: bool = True, trust_remote_code: bool = False,
                     info: dict | None = None) -> dict:
    """Train a reward model from ``init_path`` on ``rankings``, normalise it on the labelers' demonstrations,
    measure it on ``heldout`` (ranked rows with gold ``utilities``) against a fresh labeler of ``tau`` and
    against gold, and save it to ``out_dir`` with ``info`` added to ``rm_info.json``.

    Returns ``model``, ``tokenizer``, ``history``, ``metrics`` (as `evaluate`, plus the demonstrations'
    mean reward) and ``info`` (what was saved)."""
    from .io import read_jsonl
    from .paths import world_dir
    model, tokenizer = reward_model_from(init_path, device=_device(config), trust_remote_code=trust_remote_code,
                                         seed=config.seed)
    result = train_reward_model(model, tokenizer, rankings, config, progress=progress)
    model = result.model
    if config.likelihood_prior:
        fit_prior(model, init_path, rankings, config, out_dir, trust_remote_code)
    demos = read_jsonl(world_dir() / "demonstrations_val.jsonl", required=("prompt", "completion"))
    offset = normalise(model, tokenizer, demos, config.max_length)
    scores = heldout_scores(model, tokenizer, heldout, config.max_length)
    metrics = evaluate(model, tokenizer, heldout, fresh_labeler(tau, config), config.max_length, scores=scores)
    if config.likelihood_prior:
        metrics["likelihood_prior"] = prior_parts(model, heldout, scores, fresh_labeler(tau, config))
    metrics["demonstration_reward_mean"] = round(float(score(model, tokenizer, [d["prompt"] for d in demos],
                                                             [d["completion"] for d in demos]).mean()), 4)
    info = {"config": asdict(config), "init": str(init_path), "offset": offset, "train_rankings": len(rankings),
            "train_s": result.seconds, **(info or {}), **{k: v for k, v in metrics.items() if not isinstance(v, list)}}
    if out_dir is not None:
        save_reward_model(model, tokenizer, out_dir, info)
    return {"model": model, "tokenizer": tokenizer, "history": result.history, "metrics": metrics, "info": info}


def fit_prior(model, init_path: str | Path, rankings: list[dict], config: RMConfig, out_dir: str | Path | None,
              trust_remote_code: bool = False) -> LikelihoodPrior:
    """`LikelihoodPrior` of the reward model's own initialisation (``init_path``), fitted on ``rankings``
    and attached to ``model`` (the reference saved relative to ``out_dir``)."""
    import os

    from .generation import load_model
    lm, lm_tokenizer = load_model(init_path, str(model.device), trust_remote_code)
    prior = LikelihoodPrior(lm, lm_tokenizer, max_length=config.max_length).fit(rankings)
    reference = os.path.relpath(Path(init_path).resolve(), Path(out_dir).resolve()) if out_dir is not None \
        else str(Path(init_path).resolve())
    attach_prior(model, prior, reference)
    return prior


def prior_parts(model, heldout: list[dict], scores: list[float], labeler) -> dict:
    """The prior's weights, and the held-out gold accuracy of the head alone and of the prior alone
    (`evaluate`'s pairs), beside the sum's that `evaluate` reports; ``scores``: the sum's `heldout_scores`."""
    prompts = [row["prompt"] for row in heldout for _ in row["responses"]]
    responses = [y for row in heldout for y in row["responses"]]
    prior = model.likelihood_prior(prompts, responses)
    parts = {"head": (torch.tensor(scores) - prior).tolist(), "prior": prior.tolist()}
    return {"a": model.likelihood_prior.a, "b": model.likelihood_prior.b,
            **{f"accuracy_gold_{k}": evaluate(None, None, heldout, labeler, scores=v)["accuracy_gold"]
               for k, v in parts.items()}}


def run_reward_model(sft_path: str | Path, out_dir: str | Path | None = None, config: RMConfig | None = None,
                     human_pairs: list[dict] | None = None, human_only: bool = False, progress: bool = True,
                     trust_remote_code: bool = False, init_path: str | Path | None = None) -> dict:
    """Stage 2 end to end on the world: rank SFT samples, train, normalise, evaluate, save.

    The comparisons are samples of the SFT policy at ``sft_path``; the reward model starts from
    ``init_path``, by default the same SFT model. The paper started its one 6B reward model from
    a 6B SFT model for policies of every size: pass a larger SFT model as ``init_path`` for that.

    ``human_pairs`` (``prompt``/``chosen``/``rejected``, e.g. from the labeling widget via
    ``labeling.labels_to_pairs``) are added to the simulated rankings, or replace them with
    ``human_only=True``. Held-out comparisons are drawn exactly like the training ones:
    the same policy and K, on comparison prompts never trained on.
    """
    from .generation import load_model
    from .paths import world_dir
    from .world.labelers import expected_agreement, gold_agreement
    config = config or RMConfig()
    tau = json.loads((world_dir() / "world.json").read_text())["labelers"]["tau"]
    prompts = comparison_prompts(config)
    t0 = time.perf_counter()
    policy, tokenizer = load_model(sft_path, device=_device(config), trust_remote_code=trust_remote_code)
    drawn = draw_comparisons(policy, tokenizer, prompts, config, tau, train=not human_only)
    tau, rankings, heldout, held_rows = drawn["tau"], drawn["rankings"], drawn["heldout"], drawn["held_rows"]
    if human_pairs:
        rankings += load_rankings(human_pairs)
    sampling_s = time.perf_counter() - t0
    del policy
    held_pairs = utility_pairs(held_rows)
    labels = {"labelers_tau": round(tau, 6),
              "labeler_labeler_agreement": round(expected_agreement(held_pairs, tau), 4),
              "labeler_gold_agreement": round(gold_agreement(held_pairs, tau)["non_tied"], 4)}
    fit = fit_reward_model(init_path or sft_path, rankings, heldout, tau, config, out_dir, progress, trust_remote_code,
                           info={"sampling_s": sampling_s, **labels})
    fit["metrics"].update(labels)
    if out_dir is not None:
        save_comparisons(out_dir, rankings, heldout)
    return {**fit, "rankings": rankings, "heldout": heldout}


def save_comparisons(out_dir: str | Path, rankings: list[dict], heldout: list[dict]) -> None:
    """The labels beside the reward model they trained: ``rankings.jsonl`` (training) and
    ``heldout.jsonl`` (held-out, with gold ``utilities``), so that other methods (`dpo`) learn from
    the very same rankings."""
    from .io import write_jsonl_atomic
    write_jsonl_atomic(Path(out_dir) / "rankings.jsonl", rankings)
    write_jsonl_atomic(Path(out_dir) / "heldout.jsonl", heldout)
