"""What machine a run trained on, recorded in ``summary.json`` so that times are compared like for like.

A run's wall time says little without the machine: the same config trains about 3× slower on an
AVX2-only CPU (fp32) than on one with AVX-512 BF16 (``precision: auto`` → bf16). Benchmarks that
compare training times across runs pair only runs that :func:`same_hardware` accepts.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """CPU model and vector capability, cores, torch threads and GPU of this process's machine.

    Example:
        >>> sorted(machine_info())
        ['cpu', 'cpu_capability', 'cpu_count', 'gpu', 'threads', 'torch']
    """
    try:
        capability = str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # an old torch without the probe
        capability = None
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu_model(), "cpu_capability": capability, "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads(), "gpu": gpu, "torch": torch.__version__}


def same_hardware(a: Any, b: Any) -> bool:
    """True when two runs' training times can be compared: the same device and precision and, for
    each field of the ``machine`` record that both ``summary.json`` files hold (older ones have none),
    the same CPU model, CPU capability, thread count and GPU model. The capability alone does not
    tell CPUs apart: an AMD EPYC with AVX-512 BF16 and an Intel Xeon with AMX both report ``AVX512``,
    and only the Xeon has bf16 matrix units.

    Example:
        >>> same_hardware({"device": "cpu", "precision": "32"}, {"device": "cpu", "precision": "bf16-mixed"})
        False
    """
    if (a.get("device"), a.get("precision")) != (b.get("device"), b.get("precision")):
        return False
    ma, mb = a.get("machine") or {}, b.get("machine") or {}
    return all(ma[k] == mb[k] for k in ("cpu", "cpu_capability", "threads", "gpu") if k in ma and k in mb)
