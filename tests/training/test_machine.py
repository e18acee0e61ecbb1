"""The machine record of summary.json and when two runs' times compare."""

from __future__ import annotations

from biorep.training.machine import machine_info, same_hardware


def test_machine_info_names_the_cpu_and_threads() -> None:
    info = machine_info()
    assert info["cpu"] and info["cpu_count"] >= 1 and info["threads"] >= 1
    assert set(info) >= {"cpu_capability", "gpu", "torch"}


def test_same_hardware_needs_device_precision_and_the_recorded_machine_fields() -> None:
    a = {"device": "cpu", "precision": "bf16-mixed", "machine": {"cpu_capability": "AVX512", "threads": 2}}
    assert same_hardware(a, dict(a))
    assert not same_hardware(a, {**a, "precision": "32"})
    assert not same_hardware(a, {**a, "device": "cuda"})
    assert not same_hardware(a, {**a, "machine": {"cpu_capability": "AVX2", "threads": 2}})
    assert not same_hardware(a, {**a, "machine": {"cpu_capability": "AVX512", "threads": 16}})
    older = {"device": "cpu", "precision": "bf16-mixed"}  # a summary.json from before the machine record
    assert same_hardware(a, older) and same_hardware(older, a)
