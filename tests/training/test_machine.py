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
    epyc, xeon = ({**a, "machine": {**a["machine"], "cpu": cpu}} for cpu in ("AMD EPYC", "Intel(R) Xeon(R) Processor"))
    assert not same_hardware(epyc, xeon)  # both report AVX512; only the model tells them apart
    assert same_hardware(epyc, a)  # a record without the model compares on the fields both hold
    older = {"device": "cpu", "precision": "bf16-mixed"}  # a summary.json from before the machine record
    assert same_hardware(a, older) and same_hardware(older, a)
