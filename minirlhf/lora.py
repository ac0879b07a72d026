"""LoRA (Hu et al. 2021, arXiv:2106.09685) through ``peft``, an optional extra.

A frozen weight W gets a trainable low-rank update: W x + (alpha / r) * B A x, with A (r, d_in)
drawn at random and B (d_out, r) zero, so training starts exactly at the original model.
The pipeline uses it the same way in every stage: ``add_lora`` before training, ``merged``
after it, so every saved checkpoint is a plain Hugging Face model (the SFT adapters are
merged before the RM and PPO start, and PPO's reference is that merged SFT model).
``pip install "minirlhf[lora]"`` installs peft.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

INSTALL = 'LoRA needs the peft package: pip install "minirlhf[lora]" (or pip install peft)'


@dataclass
class LoRAConfig:
    """LoRA settings; each comment says where the default comes from."""
    r: int = 16                 # rank; Hu et al. found r = 4-8 enough on GPT-3; 16 is TRL's and peft's example value
    alpha: int = 32             # the update is scaled by alpha / r = 2 (TRL's examples: alpha = 2r)
    dropout: float = 0.0        # off, like every dropout in this pipeline (PPO turns dropout off)
    target_modules: str | list[str] = "all-linear"  # every linear layer but the output (QLoRA, Dettmers et al. 2023)


def require_peft():
    """``import peft``, or an ``ImportError`` saying how to install it."""
    try:
        import peft
    except ImportError:
        raise ImportError(INSTALL) from None
    return peft


def add_lora(model, config: LoRAConfig | None = None, task: str = "causal"):
    """Wrap a Hugging Face model with LoRA adapters; only they (and, for ``task="score"``,
    the scalar head) are trained. ``task``: ``"causal"`` (policy) or ``"score"`` (RM, value)."""
    if task not in ("causal", "score"):
        raise ValueError(f"add_lora: task must be 'causal' or 'score', not {task!r}")
    peft = require_peft()
    config = config or LoRAConfig()
    lora = peft.LoraConfig(r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout,
                           target_modules=config.target_modules,
                           exclude_modules=["score"] if task == "score" else None,  # trained in full instead
                           task_type="CAUSAL_LM" if task == "causal" else "SEQ_CLS",
                           fan_in_fan_out=model.config.model_type == "gpt2")  # GPT-2's Conv1D stores W transposed
    return peft.get_peft_model(model, lora)


def is_lora(model) -> bool:
    """True for a model wrapped by peft (``add_lora``)."""
    peft = sys.modules.get("peft")   # not imported: nothing can be wrapped
    return peft is not None and isinstance(model, peft.PeftModel)


def unwrap(model):
    """The Hugging Face model inside a peft wrapper (LoRA layers still in place), else the model."""
    return model.get_base_model() if is_lora(model) else model


def merged(model):
    """A plain Hugging Face model: LoRA updates added into the weights (W + alpha/r * B A) and
    the adapters removed. A model without adapters comes back as it is."""
    return model.merge_and_unload() if is_lora(model) else model


def trainable_share(model) -> tuple[int, int]:
    """(trainable parameters, all parameters)."""
    return (sum(p.numel() for p in model.parameters() if p.requires_grad),
            sum(p.numel() for p in model.parameters()))


def load_weights(model, folder: str | Path) -> None:
    """Load what ``model.save_pretrained(folder)`` wrote back into ``model``: the adapters
    (``adapter_model.safetensors``) for a LoRA model, else all weights (``model.safetensors``)."""
    from safetensors.torch import load_file
    folder = Path(folder)
    if is_lora(model):
        require_peft().set_peft_model_state_dict(model, load_file(folder / "adapter_model.safetensors"))
    else:
        model.load_state_dict(load_file(folder / "model.safetensors"), strict=False)
