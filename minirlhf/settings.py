"""Run settings: fast mode, device and seed, read in one place.

``--fast`` and the environment variable ``MINIRLHF_FAST=1`` mean the same thing;
``get_settings`` reads them and the device. ``scaled`` picks a size for the mode.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

_TRUE = ("1", "true", "yes")


@dataclass
class Settings:
    """How a run is sized: ``fast`` (a smoke-test-sized run), ``device`` and ``seed``."""

    fast: bool
    device: str
    seed: int = 0

    @property
    def gpu(self) -> bool:
        """True on an accelerator (CUDA or Apple's MPS)."""
        return self.device.split(":")[0] in ("cuda", "mps")


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def _check_device(device: str) -> str:
    """Return ``device`` if torch can use it here, else raise ``ValueError``."""
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        raise ValueError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but CUDA is not available here: "
                             "use device='auto' or 'cpu'")
        index = torch.device(device).index
        if index is not None and index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} asked for, but only "
                             f"{torch.cuda.device_count()} CUDA device(s) are visible")
    elif kind == "mps" and not _mps_available():
        raise ValueError(f"device {device!r} asked for, but MPS is not available here: "
                         "use device='auto' or 'cpu'")
    elif kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {device!r} is not supported: use 'auto', 'cpu', 'cuda' or 'mps'")
    return device


def get_settings(fast: bool | None = None, device: str | None = None, seed: int = 0) -> Settings:
    """The settings of this run.

    ``fast=None`` reads ``MINIRLHF_FAST`` ("1", "true" or "yes" mean fast).
    ``device=None`` reads ``MINIRLHF_DEVICE`` (default "auto"); "auto" picks CUDA,
    then MPS, then the CPU. An explicit device that is not available raises
    ``ValueError``.
    """
    if fast is None:
        fast = os.environ.get("MINIRLHF_FAST", "").strip().lower() in _TRUE
    if device is None:
        device = os.environ.get("MINIRLHF_DEVICE", "").strip() or "auto"
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    else:
        device = _check_device(device)
    return Settings(fast=bool(fast), device=device, seed=seed)


def scaled(cpu_value, fast_value, gpu_value, settings: Settings | None = None):
    """Pick a size for the current mode: fast wins over GPU, and the CPU is the default.

    ``scaled(2000, 50, 20000, s)`` is 50 when ``s.fast``, else 20000 on a GPU, else 2000.
    """
    settings = settings if settings is not None else get_settings()
    if settings.fast:
        return fast_value
    return gpu_value if settings.gpu else cpu_value


def require_positive(config, *names: str, allow_zero: tuple[str, ...] = ()) -> None:
    """ValueError naming ``Class.field`` unless each of ``names`` is an integer above 0 (0 allowed for
    those in ``allow_zero``): a batch size of 0 would divide by zero later, 0 epochs train nothing."""
    for name in names:
        value, low = getattr(config, name), 0 if name in allow_zero else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{type(config).__name__}.{name} must be an integer >= {low}, not {value!r}")
