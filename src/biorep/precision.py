"""Numeric precision: ``auto`` means bf16 mixed precision where the hardware computes bf16 natively.

Native bf16: a CUDA GPU that reports bf16 support (Ampere and newer), or a CPU with AVX-512 BF16 or
AMX tiles (oneDNN then runs bf16 convolutions and matmuls at up to twice the fp32 rate). Elsewhere
``auto`` is fp32, since emulated bf16 is slower than fp32. Used by training (Lightning's
``precision``) and by inference (:func:`autocast`), so a run embeds at the precision it trained in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

PRECISIONS = ("auto", "32", "bf16-mixed", "16-mixed")


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision used (a Lightning precision string) and why it was chosen."""

    value: str
    reason: str


def cpu_has_native_bf16() -> bool:
    """True when this CPU has AVX-512 BF16 or AMX (the kernels oneDNN uses for bf16)."""
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(cpu, probe, None)
        try:
            if fn is not None and bool(fn()):
                return True
        except Exception:  # an old torch without the probe, or a probe that fails
            continue
    return False


def gpu_has_native_bf16() -> bool:
    """True when a CUDA device is present and supports bf16."""
    try:
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    except Exception:
        return False


def resolve_precision(requested: str, device_type: str) -> PrecisionChoice:
    """Turn ``requested`` (``auto`` or an explicit Lightning precision) into what will be used.

    Example:
        >>> resolve_precision("32", "cpu").value
        '32'
    """
    if requested != "auto":
        return PrecisionChoice(str(requested), "set in the config")
    if device_type == "cuda":
        if gpu_has_native_bf16():
            return PrecisionChoice("bf16-mixed", "auto: the GPU supports bf16")
        return PrecisionChoice("32", "auto: the GPU has no native bf16")
    if device_type == "cpu":
        if cpu_has_native_bf16():
            return PrecisionChoice("bf16-mixed", "auto: the CPU has native bf16 (AVX-512 BF16 or AMX)")
        return PrecisionChoice("32", "auto: the CPU has no native bf16 (no AVX-512 BF16 or AMX)")
    return PrecisionChoice("32", f"auto: fp32 on {device_type}")


def training_device_type(accelerator: str) -> str:
    """The device type a Lightning ``accelerator`` setting will train on."""
    if accelerator == "cpu":
        return "cpu"
    if accelerator in ("gpu", "cuda"):
        return "cuda"
    return "cuda" if torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def autocast(precision: str, device: torch.device | str) -> Iterator[None]:
    """Autocast for inference at a resolved precision (no-op for fp32).

    Example:
        >>> with autocast("bf16-mixed", "cpu"):
        ...     pass
    """
    device_type = torch.device(device).type
    if precision.startswith("bf16"):
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
            yield
    elif precision.startswith("16") and device_type == "cuda":
        with torch.autocast(device_type="cuda", dtype=torch.float16):
            yield
    else:
        yield
