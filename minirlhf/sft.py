"""Stage 1 of InstructGPT: supervised fine-tuning (SFT) on labelers' demonstrations.

The model reads `prompt_text(tokenizer, prompt)` (the world's `format_prompt`, or the
tokenizer's chat template) followed by the demonstrated completion and is trained with
next-token cross-entropy on the completion's tokens only (`sft_loss`). Works on any Hugging
Face causal LM (GPT-2, Llama, SmolLM2, ...), in full or with LoRA (`SFTConfig.lora`), on
`prompt`/`completion` rows or chat rows (`messages`).

Where this departs from the paper (Ouyang et al. 2022, section 3.5 and appendix C.1):
1. 3 epochs at lr 1e-3, not 16 epochs at ~1e-5: our ~1k short demonstrations and a
   ~1M-parameter model. The paper saw val loss overfit after 1 epoch while preference
   kept improving, so we chose by the gold helpful rate on 200 held-out prompts (seed 0;
   the shipped tiny base scores 0.245). At lr 3e-4: 1 epoch 0.57, 3 epochs 0.635,
   5 epochs 0.68. At lr 1e-3: 3 epochs 0.685 (~25 s on CPU), 4 epochs 0.71 (~37 s).
2. Dropout: the paper used residual dropout 0.2 at 175B. We keep whatever the model
   has; the shipped tiny model has dropout 0 (pretraining without dropout, as GPT-3).
3. The paper picked the final SFT model by its RM score on a validation set; we keep the
   last checkpoint, because our RM is trained after SFT, on the SFT model's samples.
4. The paper had ~13k demonstration prompts for ~33k ranked ones. The world's file holds
   980; `SFTConfig.more_demonstrations` writes more on new prompts (`more_demonstrations`),
   and `minirlhf run` adds 1,860 (`run.MORE_DEMONSTRATIONS`): gold helpful rate 0.68 -> 0.87,
   closed QA and summaries from ~0.2 and 0 to ~0.9 (seeds 0-2, docs/sft.md).
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import transformers
from tqdm.auto import tqdm

from minirlhf.generation import generate, load_model
from minirlhf.io import DataError, read_jsonl, require_columns, require_table, save_checkpoint
from minirlhf.judge import EVAL_MAX_NEW_TOKENS, EVAL_TEMPERATURE
from minirlhf.lora import LoRAConfig
from minirlhf.models import (after_training, amp_dtype, autocast, backward_step, completion_text, context_length,
                             for_training, grad_scaler, prompt_text)
from minirlhf.settings import require_positive

COLUMNS = ("prompt", "completion")
IGNORE = -100  # label of a token the loss skips (PyTorch's and Hugging Face's convention)


@dataclass
class SFTConfig:
    """Hyperparameters of `train_sft`; each comment says where the default comes from."""

    epochs: int = 3  # paper: 16 (val loss overfit after 1, preference kept improving); 3 on tiny, see note 1
    batch_size: int = 16  # paper: 32 at 1.3B/6B; 16 gives 62 steps per epoch on our 980 demonstrations
    lr: float = 1e-3  # paper: 9.65e-6 at 1.3B (~1/20 of its pretraining lr); ~190 steps need more: half of tiny's 2e-3
    weight_decay: float = 0.1  # GPT-3's AdamW value (the paper does not state one for SFT); matrices only
    warmup_ratio: float = 0.1  # share of steps with linear warmup before the cosine decay (paper: cosine decay)
    max_length: int = 256  # prompt + completion tokens; the tiny model's context (n_positions) is 256
    grad_clip: float = 1.0  # global grad-norm clip, as in pretraining (GPT-3)
    eval_every: int = 50  # steps between val-loss evaluations (also at the start and the end)
    seed: int = 0  # seeds the data order and the samples: same seed, same model on CPU
    device: str | None = None  # None: train where the model already is; run_sft then picks settings' device
    n_samples: int = 4  # val prompts answered before and after training, to read the change
    temperature: float = EVAL_TEMPERATURE  # 0.7, minirlhf.judge's evaluation temperature
    max_new_tokens: int = EVAL_MAX_NEW_TOKENS  # 48: the longest good answer in the world is ~30 tokens
    lora: LoRAConfig | None = None  # None: full fine-tuning; LoRAConfig(): adapters, merged after training
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% slower
    bf16: bool | None = None  # bf16 autocast; None: on GPUs with native bf16 (Ampere on), never on the CPU
    fp16: bool | None = None  # fp16 autocast + gradient scaling; None: on CUDA GPUs without bf16 (T4)
    more_demonstrations: int = 0  # N more demonstrations on new prompts of the world's mix, added by `run_sft` to
                                  # the world's 980 (`more_demonstrations`; note 4). 0 here; `minirlhf run` sets
                                  # 1,860 (run.MORE_DEMONSTRATIONS)

    def __post_init__(self):
        require_positive(self, "epochs", "batch_size", "max_length", "eval_every", "n_samples", "max_new_tokens",
                         "more_demonstrations", allow_zero=("n_samples", "more_demonstrations"))


@dataclass
class SFTResult:
    """What `train_sft` returns; `history` is ready for plotting and for metrics.jsonl."""

    history: list[dict]  # {"stage": "sft", "step", "loss", "lr"} per step, "val_loss" where evaluated
    samples_before: list[dict]  # {"prompt", "response"} of the model before SFT
    samples_after: list[dict]  # the same prompts, the same seed, after SFT
    seconds: float  # wall time of the whole call, samples and saving included
    model: Any = field(repr=False)  # the fine-tuned model, in eval mode


# --- data ----------------------------------------------------------------------------

def split_chat(messages, where: str = "chat") -> dict:
    """A chat row's `messages` as {"prompt", "completion"}: the last (assistant) turn is the
    completion, the turns before it the prompt (one user turn becomes its plain text).

    Raises `DataError` naming `where` unless `messages` is a list of {"role", "content"}
    strings ending in an assistant turn that follows a user turn.
    """
    if not isinstance(messages, list) or len(messages) < 2:
        raise DataError(f"{where}: 'messages' should be a list of at least a user and an assistant turn")
    for m in messages:
        if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
            raise DataError(f"{where}: every message needs string 'role' and 'content', got {m!r}")
    if messages[-1]["role"] != "assistant" or messages[-2]["role"] != "user":
        raise DataError(f"{where}: 'messages' should end in a user turn and then the assistant's answer "
                        f"(ends in {messages[-2]['role']!r}, {messages[-1]['role']!r})")
    prompt = [dict(role=m["role"], content=m["content"]) for m in messages[:-1]]
    return {"prompt": prompt[0]["content"] if len(prompt) == 1 else prompt, "completion": messages[-1]["content"]}


def _is_chat(data) -> bool:
    columns = data.column_names if hasattr(data, "column_names") else list(data[0]) if len(data) else []
    return "messages" in columns and "prompt" not in columns


def load_sft_rows(data, source: str | None = None) -> list[dict]:
    """Rows {"prompt", "completion"} from a JSONL path, a list of dicts or a `datasets.Dataset`.

    Chat rows (a `messages` column, as in TRL and the Hugging Face hub) are split by
    `split_chat`; their prompt is a string or, for a longer chat, a list of messages.
    Raises `DataError` naming the file (or `source`) and row for a missing column, a
    non-string value or an empty table.
    """
    if isinstance(data, (str, os.PathLike)):
        source = source or str(data)
        rows = read_jsonl(data)
        rows = read_jsonl(data, required=("messages",) if _is_chat(rows) else COLUMNS)
    else:
        source = source or "SFT data"
        require_table(data, source)
        require_columns(data, ("messages",) if len(data) and _is_chat(data) else COLUMNS, source)
        rows = list(data)
    if _is_chat(rows):
        return [split_chat(row["messages"], f"{source}, row {number}") for number, row in enumerate(rows, start=1)]
    for number, row in enumerate(rows, start=1):
        for c in COLUMNS:
            if not isinstance(row[c], str):
                raise DataError(f"{source}, row {number}: {c!r} should be a string, got {type(row[c]).__name__}")
    return [{c: row[c] for c in COLUMNS} for row in rows]


def tokenize_example(tokenizer, prompt: str | list[dict], completion: str, max_length: int,
                     where: str = "example") -> dict:
    """Token ids of `prompt_text(prompt) + completion_text(completion) + eos`, labels masked on the prompt.

    For the world's tokenizers that is `format_prompt(prompt) + " " + completion + eos`; with
    a chat template, the rendered chat up to the assistant's turn, the completion and eos
    (chat templates end an assistant turn with the eos token: SmolLM2's and Qwen's `<|im_end|>`).

    The loss is on the response only, as in the paper: labels are -100 on every prompt
    token. A completion too long for `max_length` is cut and then gets no eos, so the
    model is never taught to stop in mid-answer. A prompt leaving no room for a single
    completion token raises `DataError` ("over-long prompt") naming `where`.
    """
    try:
        text = prompt_text(tokenizer, prompt)
    except Exception as e:                     # jinja2's TemplateError, e.g. a role the template lacks
        raise DataError(f"{where}: the tokenizer's chat template cannot render this prompt: {e}") from e
    prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    completion_ids = (tokenizer(completion_text(tokenizer, completion), add_special_tokens=False)["input_ids"]
                      + [tokenizer.eos_token_id])
    room = max_length - len(prompt_ids)
    if room < 1:
        raise DataError(f"{where}: over-long prompt: {len(prompt_ids)} prompt tokens leave no room "
                        f"for a completion token within max_length={max_length}")
    completion_ids = completion_ids[:room]
    return {"input_ids": prompt_ids + completion_ids, "labels": [IGNORE] * len(prompt_ids) + completion_ids}


def tokenize_rows(tokenizer, rows: list[dict], max_length: int, source: str = "SFT data") -> list[dict]:
    """`tokenize_example` on every row; errors name the row (1-based)."""
    return [tokenize_example(tokenizer, r["prompt"], r["completion"], max_length, where=f"{source}, row {i}")
            for i, r in enumerate(rows, start=1)]


def collate(examples: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Pad on the right to the longest example: input_ids, labels, attention_mask, each (B, T).

    Pads get label -100 and attention 0, so neither the loss nor any real token sees them.
    """
    T = max(len(e["input_ids"]) for e in examples)
    pad = [T - len(e["input_ids"]) for e in examples]
    return {
        "input_ids": torch.tensor([e["input_ids"] + [pad_token_id] * p for e, p in zip(examples, pad)]),
        "labels": torch.tensor([e["labels"] + [IGNORE] * p for e, p in zip(examples, pad)]),
        "attention_mask": torch.tensor([[1] * len(e["input_ids"]) + [0] * p for e, p in zip(examples, pad)]),
    }


# --- loss ----------------------------------------------------------------------------

def sft_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of the response tokens.

        L = -1/|R| * sum_{t in R} log p(y_t | x, y_<t)

    where R are the positions whose label is not -100 (the response and its eos).
    Position t's logits predict token t+1, hence the shift by one.
    logits: (B, T, V), labels: (B, T) -> scalar.
    Equivalent to `model(input_ids, labels=labels).loss` of Hugging Face causal LMs.
    """
    logits = logits[:, :-1].float()  # (B, T-1, V): the prediction for the next token
    targets = labels[:, 1:]  # (B, T-1)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE)


def masked_token_count(labels: torch.Tensor) -> int:
    """How many tokens `sft_loss` averages over: labels != -100 after the shift. (B, T) -> int."""
    return int((labels[:, 1:] != IGNORE).sum())


@torch.no_grad()
def evaluate_loss(model, examples: list[dict], pad_token_id: int, batch_size: int = 64) -> float:
    """`sft_loss` over all `examples`, weighted by token so it does not depend on batching."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        batch = {k: v.to(model.device) for k, v in collate(examples[i : i + batch_size], pad_token_id).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # (B, T, V)
        n = masked_token_count(batch["labels"])
        total += sft_loss(logits, batch["labels"]).item() * n
        count += n
    model.train(was_training)
    return total / count


# --- training ------------------------------------------------------------------------

def _lr_lambda(warmup: int, steps: int):
    """Multiplier of the peak lr: linear warmup, then cosine decay to 0 (the paper's schedule)."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return f


def _optimizer(model, config: SFTConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only, not on biases and norms (GPT-3)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr)


def _samples(model, tokenizer, prompts: list[str], config: SFTConfig) -> list[dict]:
    responses = generate(model, tokenizer, prompts, max_new_tokens=config.max_new_tokens,
                         temperature=config.temperature, seed=config.seed)
    return [{"prompt": p, "response": r} for p, r in zip(prompts, responses)]


def _pad_id(tokenizer) -> int:
    """The pad id, else eos (Llama-style tokenizers have none); pads are masked either way."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _prepare(tokenizer, train, val, config: SFTConfig,
             limit: int | None = None) -> tuple[list[dict], list[dict], list[str]]:
    """Tokenized train and val examples, and the val (else train) prompts to sample: the first
    ``config.n_samples`` whose answers fit the model's ``limit`` positions."""
    train_rows = load_sft_rows(train)
    val_rows = load_sft_rows(val) if val is not None else []
    train_ex = tokenize_rows(tokenizer, train_rows, config.max_length, source=_source(train, "train"))
    val_ex = tokenize_rows(tokenizer, val_rows, config.max_length, source=_source(val, "val"))
    for examples, data, what in ((train_ex, train, "train"), (val_ex, val, "val")):
        longest = max(range(len(examples)), key=lambda i: len(examples[i]["input_ids"]), default=None)
        if limit and longest is not None and len(examples[longest]["input_ids"]) > limit:
            raise DataError(f"{_source(data, what)}, row {longest + 1}: {len(examples[longest]['input_ids'])} tokens, "
                            f"more than the model's {limit} positions: set SFTConfig.max_length <= {limit} "
                            f"(now {config.max_length}; longer completions are then cut)")
    rows, examples = (val_rows, val_ex) if val_rows else (train_rows, train_ex)
    fits = [r["prompt"] for r, ex in zip(rows, examples)
            if limit is None or ex["labels"].count(IGNORE) + config.max_new_tokens <= limit]
    return train_ex, val_ex, fits[: config.n_samples]


def _source(data, what: str) -> str:
    """How errors name a data set: its file when it is one, else ``what`` (train, val)."""
    return str(data) if isinstance(data, (str, Path)) else what


def _update(model, opt, sched, batch: dict, grad_clip: float, dtype=None, scaler=None) -> tuple[float, float]:
    """One AdamW step on `sft_loss` (in `dtype` autocast, through `scaler`); returns (loss, the lr this step used)."""
    scaler = scaler or grad_scaler(model.device, None)
    with autocast(model.device, dtype):
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # (B, T, V)
    loss = sft_loss(logits, batch["labels"])
    lr = sched.get_last_lr()[0]
    backward_step(loss, opt, model.parameters(), grad_clip, scaler)
    sched.step()
    return loss.item(), lr


def train_sft(model, tokenizer, train, val=None, config: SFTConfig | None = None,
              out_dir: str | Path | None = None, progress: bool = True) -> SFTResult:
    """Fine-tune `model` on demonstrations `train` (path, list of dicts or Dataset).

    AdamW, linear warmup then cosine decay; the data order and the samples are seeded by
    `config.seed`. Val loss (when `val` is given) is measured before training (a step-0
    entry with no train loss), every `config.eval_every` steps and at the end. If
    `out_dir` is given, the model, the tokenizer and `sft_info.json` are saved there
    atomically. Returns an `SFTResult` whose model is in eval mode.
    """
    config, start = config or SFTConfig(), time.time()
    if config.device is not None:
        model.to(config.device)
    pad_id = _pad_id(tokenizer)
    limit = context_length(model)
    train_ex, val_ex, sample_prompts = _prepare(tokenizer, train, val, config, limit)
    samples_before = _samples(model, tokenizer, sample_prompts, config)
    model = for_training(model, config.lora, config.gradient_checkpointing)
    dtype = amp_dtype(model.device, config.bf16, config.fp16)
    scaler = grad_scaler(model.device, dtype)

    torch.manual_seed(config.seed)  # for models with dropout; the data order has its own generator
    order = torch.Generator().manual_seed(config.seed)
    steps = config.epochs * math.ceil(len(train_ex) / config.batch_size)
    opt = _optimizer(model, config)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(round(config.warmup_ratio * steps), steps))
    history = []
    if val_ex:
        history.append({"stage": "sft", "step": 0, "val_loss": evaluate_loss(model, val_ex, pad_id), "lr": 0.0})
    model.train()
    batches = (idx for _ in range(config.epochs)  # a fresh shuffle per epoch
               for idx in torch.randperm(len(train_ex), generator=order).split(config.batch_size))
    bar, postfix = tqdm(batches, total=steps, desc="sft", disable=not progress), {}
    for step, idx in enumerate(bar, start=1):
        batch = {k: v.to(model.device) for k, v in collate([train_ex[i] for i in idx], pad_id).items()}
        loss, lr = _update(model, opt, sched, batch, config.grad_clip, dtype, scaler)
        history.append({"stage": "sft", "step": step, "loss": loss, "lr": lr})
        postfix["loss"] = f"{loss:.3f}"
        if val_ex and (step % config.eval_every == 0 or step == steps):
            history[-1]["val_loss"] = evaluate_loss(model, val_ex, pad_id)
            postfix["val"] = f"{history[-1]['val_loss']:.3f}"
        bar.set_postfix(postfix)
    bar.close()
    model, = after_training(model, gradient_checkpointing=config.gradient_checkpointing)  # LoRA merged: a plain model
    samples_after = _samples(model, tokenizer, sample_prompts, config)
    result = SFTResult(history, samples_before, samples_after, time.time() - start, model)
    if out_dir is not None:
        save_sft(result, tokenizer, config, Path(out_dir), n_train=len(train_ex), n_val=len(val_ex))
        result.seconds = time.time() - start
    return result


def save_sft(result: SFTResult, tokenizer, config: SFTConfig, out_dir: Path, **extra) -> None:
    """Save model, tokenizer (safetensors) and sft_info.json to `out_dir + ".tmp"`, then swap it in.

    sft_info.json: config, steps, train_loss (last step), val_loss_before, val_loss, seconds,
    device, versions, `extra`, history and samples.
    """
    vals = [h["val_loss"] for h in result.history if "val_loss" in h]
    save_checkpoint(result.model, tokenizer, out_dir, "sft_info.json", {
        "config": asdict(config),
        "steps": result.history[-1]["step"] if result.history else 0,
        "train_loss": result.history[-1].get("loss") if result.history else None,
        "val_loss_before": vals[0] if vals else None,
        "val_loss": vals[-1] if vals else None,
        "seconds": round(result.seconds, 1),
        "device": str(result.model.device),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        **extra,
        "history": result.history,
        "samples_before": result.samples_before,
        "samples_after": result.samples_after,
    })


DEMONSTRATION_STREAM = 2_000  # `reward.new_prompts`' stream for more demonstrations (the RM's is 1,000)


def more_demonstrations(n: int, seed: int = 0) -> list[dict]:
    """``n`` labeler demonstrations (the world's good answers, ``write_response(task, "good")``) on
    new prompts of the world's mix (`reward.new_prompts`, their own stream): prompts in none of the
    world's files, so never an evaluation or held-out comparison prompt. The same ``seed``, the same rows."""
    from minirlhf.reward import new_prompts
    from minirlhf.world.prompts import parse_prompt
    from minirlhf.world.responses import write_response
    prompts = new_prompts(n, seed, stream=DEMONSTRATION_STREAM, field="SFTConfig.more_demonstrations")
    rng = random.Random(7_000 + seed)
    return [{"prompt": p, "completion": write_response(parse_prompt(p), "good", rng)} for p in prompts]


def run_sft(base_path: str | Path | None = None, out_dir: str | Path | None = None,
            config: SFTConfig | None = None, train_path: str | Path | None = None,
            val_path: str | Path | None = None, progress: bool = True, trust_remote_code: bool = False) -> SFTResult:
    """Load a base model (default: the shipped tiny one; any causal LM's hub name or folder),
    fine-tune it on demonstrations and save it to `out_dir` (if given). With neither `train_path`
    nor `val_path` these are the world's (`world_dir()/demonstrations.jsonl` and
    `demonstrations_val.jsonl`); with your own `train_path` and no `val_path` there is no
    validation set (the world's would measure another task). ``config.more_demonstrations`` adds that
    many new demonstrations (`more_demonstrations`) to the world's; it needs the world's data."""
    from minirlhf.paths import base_model_dir, world_dir
    from minirlhf.settings import get_settings

    config = config or SFTConfig()
    device = config.device or get_settings().device
    model, tokenizer = load_model(base_path or base_model_dir("tiny"), device=device,
                                  trust_remote_code=trust_remote_code)
    train = train_path
    if train_path is None:
        train = train_path = world_dir() / "demonstrations.jsonl"
        val_path = val_path or world_dir() / "demonstrations_val.jsonl"
        if config.more_demonstrations:
            train = read_jsonl(train_path, required=COLUMNS) + more_demonstrations(config.more_demonstrations,
                                                                                   config.seed)
    elif config.more_demonstrations:
        raise ValueError(f"SFTConfig.more_demonstrations ({config.more_demonstrations}) adds the world's new "
                         f"demonstrations to the world's own; with your own train_path ({train_path}) set it to 0")
    return train_sft(model, tokenizer, train, val_path, config, out_dir=out_dir, progress=progress)
