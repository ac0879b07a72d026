"""Pretraining: a small GPT-2 reads the world's "internet" and becomes the base model.

This is the stage InstructGPT starts from (GPT-3); here it takes minutes on a laptop.
The model learns the world's facts and its User:/Assistant: format, good and bad answers
alike, which is exactly what SFT, the reward model and PPO then have to improve on.
"""

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import transformers
from tqdm.auto import tqdm
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerBase

from minirlhf.generation import count_params
from minirlhf.io import save_checkpoint
from minirlhf.models import fuse_activations
from minirlhf.tokenizer import train_tokenizer

CONTEXT = 256  # n_positions: a prompt plus a 48-token answer fits with room to spare


@dataclass(frozen=True)
class ModelSize:
    """One rung of the size ladder: a GPT-2 shape and how long to train it."""

    n_layer: int  # depth: a few layers suffice to look a fact up and copy an entity
    n_embd: int  # width; params grow ~ 12 * n_layer * n_embd**2 (+ vocab * n_embd embeddings)
    n_head: int  # heads of 32-64 dims, as in GPT-2
    steps: int  # optimizer steps: the copy-the-entity skill needs many steps, not many tokens
    batch_size: int  # blocks per step; small batches buy more steps for the same compute
    lr: float  # peak AdamW lr; smaller models tolerate larger lrs (GPT-3, Table 2.1)
    dropout: float = 0.0  # GPT-2's 0.1 for the rungs that see the 0.4M-token corpus dozens of times
    eval_every: int = 500  # steps between held-out evaluations (early stopping keeps the best): 4 on tiny


SIZES: dict[str, ModelSize] = {
    # 0.14M params (1/7 of tiny, 1/36 of small, 1/270 of large): the bottom rung, so that the ladder spans more
    # than 30x in sizes that all run on 2 CPU cores, and its SFT model is one the larger SFT models beat.
    "nano": ModelSize(n_layer=2, n_embd=48, n_head=4, steps=2000, batch_size=16, lr=3e-3),
    # 1.02M params, 4.4 MB: shipped in the repo. 0.18 s/step on 2 CPU cores -> ~6.5 min; val loss 0.540.
    "tiny": ModelSize(n_layer=4, n_embd=128, n_head=4, steps=2000, batch_size=16, lr=2e-3),
    # 5.2M params, 21 MB: 0.76 s/step on 2 CPU cores -> ~40 min; 61-75 s on an H200; val loss 0.513.
    "small": ModelSize(n_layer=6, n_embd=256, n_head=4, steps=3000, batch_size=16, lr=1e-3, dropout=0.1),
    # 15M params, 60 MB: a GPU size (~5 s/step on 2 CPU cores).
    "medium": ModelSize(n_layer=8, n_embd=384, n_head=6, steps=5000, batch_size=32, lr=6e-4, dropout=0.1),
    # 38.7M params (38x tiny), 156 MB: a GPU size. It memorises the 0.4M-token corpus within ~1000 steps at
    # lr 4e-4, dropout 0.1 (best val loss 0.556). Sweep on an H200 (data/results/pretrain_sweep_large.json,
    # 8 settings): lr 3e-4, dropout 0.3, cosine over 2000 steps, evaluated every 100 -> 0.508 at step 1800, 113 s.
    "large": ModelSize(n_layer=12, n_embd=512, n_head=8, steps=2000, batch_size=32, lr=3e-4, dropout=0.3,
                       eval_every=100),
}


@dataclass
class PretrainConfig:
    """Everything `pretrain` needs; `None` means "take it from the ModelSize"."""

    size: str | ModelSize = "tiny"  # a name in SIZES, or a custom ModelSize
    steps: int | None = None  # None: size.steps
    batch_size: int | None = None  # None: size.batch_size
    lr: float | None = None  # None: size.lr
    block_size: int = 128  # tokens per training sequence; a corpus document is far shorter
    vocab_size: int = 2048  # tiny vocab keeps the embedding a fraction of a tiny model
    warmup: int = 100  # linear warmup steps, a common choice for short runs (nanoGPT)
    min_lr_ratio: float = 0.1  # cosine decays to 10% of the peak (GPT-3)
    weight_decay: float = 0.1  # on matrices only, not biases/LayerNorms (GPT-3)
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW betas (GPT-3)
    grad_clip: float = 1.0  # global grad-norm clip (GPT-3)
    dropout: float | None = None  # None: size.dropout
    eval_every: int | None = None  # None: size.eval_every
    patience: int | None = 2  # stop after this many evaluations without a new best val loss (None: never);
    #                           the saved model is always the best one seen (early stopping, as the corpus
    #                           is only ~0.4M tokens and the larger rungs would otherwise memorise it)
    seed: int = 0  # seeds init and batch sampling: same seed, same model on CPU
    device: str = "cpu"  # "cuda" works for the larger sizes

    def model_size(self) -> ModelSize:
        """The ModelSize with this config's overrides of steps, batch size and lr."""
        size = SIZES[self.size] if isinstance(self.size, str) else self.size
        return replace(
            size,
            steps=self.steps or size.steps,
            batch_size=self.batch_size or size.batch_size,
            lr=self.lr or size.lr,
            dropout=size.dropout if self.dropout is None else self.dropout,
            eval_every=self.eval_every or size.eval_every,
        )


def _read_texts(path: str | Path) -> list[str]:
    """The "text" field of every row of a JSONL file."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def _default_paths(size: str | ModelSize) -> tuple[Path, Path, Path | None]:
    """data/world/corpus.jsonl, corpus_val.jsonl and data/models/base-<size> (None if custom)."""
    from minirlhf.paths import base_model_dir, world_dir

    out_dir = base_model_dir(size) if isinstance(size, str) else None
    return world_dir() / "corpus.jsonl", world_dir() / "corpus_val.jsonl", out_dir


def pack(texts: list[str], tokenizer: PreTrainedTokenizerBase, block_size: int) -> torch.Tensor:
    """Concatenate every text's tokens + eos and cut the stream into (n_blocks, block_size)."""
    ids = []
    for doc in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        ids.extend(doc)
        ids.append(tokenizer.eos_token_id)
    n_blocks = len(ids) // block_size
    if n_blocks == 0:
        raise ValueError(f"{len(ids)} tokens do not fill one block of {block_size}")
    return torch.tensor(ids[: n_blocks * block_size]).view(n_blocks, block_size)


@torch.no_grad()
def evaluate(model: GPT2LMHeadModel, blocks: torch.Tensor, batch_size: int = 64) -> float:
    """Mean next-token cross-entropy over all `blocks` (n_blocks, block_size)."""
    was_training = model.training
    model.eval()
    total = 0.0
    for i in range(0, len(blocks), batch_size):
        x = blocks[i : i + batch_size].to(model.device)  # (B, T)
        total += model(input_ids=x, labels=x).loss.item() * len(x)  # every block has T-1 targets
    model.train(was_training)
    return total / len(blocks)


def _lr_lambda(warmup: int, steps: int, min_ratio: float):
    """Multiplier of the peak lr: linear warmup, then cosine decay to `min_ratio`."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def build_model(size: ModelSize, tokenizer: PreTrainedTokenizerBase) -> GPT2LMHeadModel:
    """A freshly initialized GPT-2 of the given shape, with the size's dropout (0 on tiny); its
    ``gelu_new`` runs as one kernel (`models.fuse_activations`), the config still says ``gelu_new``."""
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=CONTEXT,
        n_embd=size.n_embd,
        n_layer=size.n_layer,
        n_head=size.n_head,
        resid_pdrop=size.dropout,
        embd_pdrop=size.dropout,
        attn_pdrop=size.dropout,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return fuse_activations(GPT2LMHeadModel(config))


def pretrain(
    size: str | ModelSize = "tiny",
    out_dir: str | Path | None = None,
    corpus_path: str | Path | None = None,
    val_path: str | Path | None = None,
    device: str = "cpu",
    seed: int = 0,
    steps: int | None = None,
    progress: bool = True,
    **overrides,
) -> dict:
    """Train a tokenizer and a GPT-2 on the corpus; save both to `out_dir`.

    Paths default to the world's corpus files and `minirlhf.paths.base_model_dir(size)`.
    `overrides` are further `PretrainConfig` fields (batch_size, lr, eval_every, ...).
    Returns the contents of `out_dir/pretrain_info.json`: shapes, params, tokens seen,
    final losses, timing, versions and `history`, a list of
    {"stage": "pretrain", "step", "loss" (mean train loss since the last eval), "val_loss"}.
    """
    cfg = PretrainConfig(size=size, device=device, seed=seed, steps=steps, **overrides)
    ms, name = cfg.model_size(), size if isinstance(size, str) else "custom"
    if None in (out_dir, corpus_path, val_path):
        defaults = _default_paths(size)
        corpus_path, val_path, out_dir = corpus_path or defaults[0], val_path or defaults[1], out_dir or defaults[2]
        if out_dir is None:
            raise ValueError("a custom ModelSize needs an explicit out_dir")
    texts = _read_texts(corpus_path)
    tokenizer = train_tokenizer(texts, cfg.vocab_size, model_max_length=CONTEXT)
    train_blocks = pack(texts, tokenizer, cfg.block_size)  # (N, block_size)
    val_blocks = pack(_read_texts(val_path), tokenizer, cfg.block_size)  # (N_val, block_size)

    if torch.device(cfg.device).type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 matmuls: the fp32 loss curve, several times faster
    torch.manual_seed(cfg.seed)  # model init uses the global RNG
    model = build_model(ms, tokenizer).to(cfg.device).train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=ms.lr,
        betas=cfg.betas,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(min(cfg.warmup, ms.steps), ms.steps, cfg.min_lr_ratio))
    gen = torch.Generator().manual_seed(cfg.seed)  # picks the blocks of each batch

    history, window, best = [], [], (math.inf, 0, None)  # best: (val loss, step, weights on the CPU)
    start = time.time()
    bar = tqdm(range(1, ms.steps + 1), desc=f"pretrain {name}", disable=not progress)
    for step in bar:
        x = train_blocks[torch.randint(len(train_blocks), (ms.batch_size,), generator=gen)].to(cfg.device)  # (B, T)
        loss = model(input_ids=x, labels=x).loss  # labels are shifted inside the model
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
        window.append(loss.item())
        bar.set_postfix(loss=f"{window[-1]:.3f}")
        if step % ms.eval_every == 0 or step == ms.steps:
            val_loss = evaluate(model, val_blocks)
            history.append({"stage": "pretrain", "step": step, "loss": sum(window) / len(window), "val_loss": val_loss})
            bar.set_postfix(loss=f"{history[-1]['loss']:.3f}", val=f"{val_loss:.3f}")
            window = []
            if val_loss < best[0]:
                best = (val_loss, step, {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})
            elif cfg.patience is not None and step - best[1] >= cfg.patience * ms.eval_every:
                break  # early stopping: the val loss has not improved for `patience` evaluations
    seconds = time.time() - start
    if best[2] is not None and best[1] != step:
        model.load_state_dict(best[2])  # keep the best model seen, not the last

    tokens_seen = step * ms.batch_size * cfg.block_size
    info = {
        "size": name,
        "n_layer": ms.n_layer,
        "n_embd": ms.n_embd,
        "n_head": ms.n_head,
        "vocab_size": len(tokenizer),
        "params": count_params(model),
        "tokens_seen": tokens_seen,
        "steps": step,  # steps run (fewer than the size's if early stopping stopped it)
        "best_step": best[1],  # the saved weights' step: the lowest val loss seen
        "dropout": ms.dropout,
        "batch_size": ms.batch_size,
        "block_size": cfg.block_size,
        "lr": ms.lr,
        "val_loss": best[0],  # of the saved (best) weights
        "train_loss": next(h["loss"] for h in history if h["step"] == best[1]),
        "seconds": round(seconds, 1),
        "tokens_per_second": round(tokens_seen / seconds),  # evaluations included
        "device": cfg.device,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "seed": cfg.seed,
        "config": {k: v for k, v in asdict(cfg).items() if k != "size"},
        "history": history,
    }
    save_checkpoint(model.eval(), tokenizer, out_dir, "pretrain_info.json", info)
    return info
