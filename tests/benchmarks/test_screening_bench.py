"""The screening benchmark's RESULTS.md / results.json generator on fake study folders (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from biorep.rundir import RunPaths, write_json

from .conftest import script_module

ROOT = Path(__file__).resolve().parents[2]
RUN_PY = ROOT / "benchmarks" / "screening" / "run.py"


@pytest.fixture(scope="module")
def bench():
    with script_module(RUN_PY, "screening_bench_run") as module:
        yield module


def _quality(name: str) -> float:
    """Fake truth: multi-crop +0.05, random augmentation +0.02 (every setup not named ``-none-``: the
    budget curve's grid is random augmentation), baselines lowest."""
    if name.startswith(("untrained", "classical")):
        return 0.3 if name.startswith("untrained") else 0.35
    return 0.5 + 0.05 * ("-multi" in name) + 0.02 * ("-none-" not in name) + 0.001 * len(name)


def _boot(value: float, noise: np.ndarray) -> dict:
    reps = value + noise
    return {"value": value, "ci_low": float(np.quantile(reps, 0.025)), "ci_high": float(np.quantile(reps, 0.975)),
            "replicates": reps.tolist()}


def _fake_study(prep, regularized_heavier: bool = True) -> None:
    rng = np.random.default_rng(0)
    noise = {f["label"]: rng.normal(scale=0.01, size=100) for f in prep.study.folds}
    for spec in prep.setups:
        run = prep.out / "runs" / spec.name
        run.mkdir(parents=True)
        q = _quality(spec.setup_name)
        b = _boot(q, noise[spec.fold])
        method = spec.overrides.get("method", {}).get("name", "supcon")
        epochs = spec.overrides.get("train.epochs", prep.base["train"]["epochs"])
        heavy = regularized_heavier and method == "regularized"
        write_json(RunPaths(run).summary, {
            "method": method, "epochs": min(epochs, 5) if method == "byol" else epochs, "max_epochs": epochs,
            "stopped_early": method == "byol", "global_step": max(epochs, 1), "wall_time_s": 100.0 * (1 + heavy)
            / (3 if method == "byol" else 1), "time_per_epoch_s": 10.0, "peak_rss_mb": 1000.0 + 500 * heavy,
            "peak_tracemalloc_mb": 10.0 + 5 * heavy})
        write_json(RunPaths(run).evaluation, {
            "similarity": {"summary": {"d": {"median": q, "mad": 0.0}, "bootstrap": b}},
            "treated_vs_control": {"summary": {"overall": {"roc_auc": q}, "bootstrap": b}},
            "clustering": {"summary": {"best_per_group": [{"silhouette": q}], "bootstrap": b}},
            **{k: {"summary": {"mean_map": q, "bootstrap": b}} for k in (
                "replicate_map", "replicate_map_sphered", "label_map", "label_map_sphered")},
        })
    write_json(prep.out / "benchmark.json", {"command": "python benchmarks/screening/run.py", "cli": "biorep study x",
                                             "started": "2026-12-02T00:00:00", "wall_time_s": 60.0,
                                             "sessions": [{"wall_time_s": 60.0}]})


def test_results_from_fake_studies(bench, tmp_path: Path) -> None:
    from biorep.study.session import prepare_study

    preps = {k: prepare_study(bench.CONFIGS[k], out=tmp_path / k) for k in ("gray", "budget")}
    for prep in preps.values():
        _fake_study(prep)
    target = bench.write_results(preps, tmp_path / "RESULTS.md")
    text = target.read_text()
    doc = json.loads((tmp_path / "results.json").read_text())

    gray = doc["configurations"]["gray"]
    assert gray["folds"] == ["Week4_27801", "Week4_27821", "Week4_27861"]
    assert len(gray["setups"]) == 22  # 16 + 4 extra paradigms + untrained + classical
    rec = gray["setups"]["byol-random-multi"]
    assert rec["epochs_run"] == {"Week4_27801": 5, "Week4_27821": 5, "Week4_27861": 5} and rec["max_epochs"] == 20
    tvc = rec["tasks"]["treated vs control"]
    assert tvc["median"] == pytest.approx(_quality("byol-random-multi")) and tvc["mad"] == pytest.approx(0.0)
    assert tvc["ci_low"] < tvc["median"] < tvc["ci_high"]
    assert tvc["untrained"] == pytest.approx(0.3) and tvc["classical"] == pytest.approx(0.35)
    assert tvc["vs_untrained"]["verdict"] == "holds" and tvc["vs_classical"]["verdict"] == "holds"
    f = gray["findings"]
    assert f["Multi-crop vs one crop"]["verdict"] == "holds"
    assert f["Random augmentation vs none"]["verdict"] == "holds"
    assert f["Regularized costs the most"]["verdict"] == "holds"
    assert f["BYOL competitive and faster"]["faster"] == "holds"
    assert f["No single setup wins every task"]["verdict"] in ("holds", "does not hold", "cannot tell")
    assert "**Multi-crop vs one crop** — the study: it generally helps. Here: **holds**" in text
    assert "Every paradigm has a setup above the untrained encoder on every task." in text
    assert "above the untrained encoder in **140** and below it in 0 of the 140 (trained setup, task)" in text
    budget = doc["configurations"]["budget"]
    assert set(budget["budget_curve"]) == {"weak", "autoencoder", "regularized", "byol"}
    assert set(budget["budget_curve"]["byol"]) == {"1", "4", "16", "50"}
    assert "### Budget curve" in text
    # the 50-epoch grid setups (random, one crop) with the extras' other views give the 16-setup grid there
    top = budget["findings_at_top_budget"]
    assert top["epochs"] == 50
    paradigms = ("autoencoder", "byol", "regularized", "weak")
    aug = top["Random augmentation vs none"]
    assert sorted(aug["pairs"]) == sorted([[f"{m}-50", f"{m}-none-50"] for m in paradigms]
                                          + [[f"{m}-multi-50", f"{m}-none-multi-50"] for m in paradigms])
    assert aug["verdict"] == "holds" and aug["tasks"]["similarity"]["pairs"] == ["holds"] * 8
    crops = top["Multi-crop vs one crop"]
    assert sorted(crops["pairs"]) == sorted([[f"{m}-multi-50", f"{m}-50"] for m in paradigms]
                                            + [[f"{m}-none-multi-50", f"{m}-none-50"] for m in paradigms])
    assert crops["verdict"] == "holds"
    assert top["Regularized costs the most"]["verdict"] == "holds"
    assert "### Findings at 50 epochs\n" in text and "(8 pairs)" in text
    curve = text[text.index("### Budget curve"):text.index("### Findings at 50 epochs")]
    assert sum(line.startswith("| weak | 50 |") for line in curve.splitlines()) == 1  # the grid's, not the twin's
    assert sum(line.startswith("| ") for line in curve.splitlines()) == 1 + 16  # header, 4 paradigms × 4 budgets
    assert str(tmp_path) not in text or "Study folder" in text


def test_missing_evaluation_is_named(bench, tmp_path: Path) -> None:
    from biorep.study.session import prepare_study

    prep = prepare_study(bench.CONFIGS["gray"], out=tmp_path / "g")
    _fake_study(prep)
    run = prep.out / "runs" / "weak-none-one@Week4_27821"
    ev = json.loads(RunPaths(run).evaluation.read_text())
    del ev["label_map_sphered"]
    write_json(RunPaths(run).evaluation, ev)
    with pytest.raises(bench.Missing, match="weak-none-one.*Week4_27821"):
        bench.write_results({"gray": prep}, tmp_path / "R.md")


def test_run_py_uses_only_library_calls() -> None:
    src = RUN_PY.read_text()
    assert "biorep.cli" not in src
    assert '"summary.json"' not in src and "os.replace" not in src


def test_results_from_a_restored_archive(bench, tmp_path: Path) -> None:
    """A study archived in one session and restored in the next gives the same results."""
    from biorep.study import is_restored
    from biorep.study.session import prepare_study

    first = prepare_study(bench.CONFIGS["gray"], out=tmp_path / "session1" / "screening-16")
    _fake_study(first)
    archive = tmp_path / "archive"
    assert len(bench.sync_archive(first, archive)) == len(first.setups)
    second = prepare_study(bench.CONFIGS["gray"], out=tmp_path / "session2" / "screening-16")
    assert len(bench.restore_archive(second, archive)) == len(first.setups)
    assert all(is_restored(second.out / "runs" / s.name) for s in second.setups)
    bench.write_results({"gray": first}, tmp_path / "a" / "RESULTS.md")
    bench.write_results({"gray": second}, tmp_path / "b" / "RESULTS.md")
    a, b = (json.loads((tmp_path / d / "results.json").read_text())["configurations"]["gray"] for d in "ab")
    assert a["setups"] == b["setups"] and a["findings"] == b["findings"]


def test_sessions_of_both_sides_are_kept(bench, tmp_path: Path) -> None:
    path = tmp_path / "benchmark.json"
    bench.record_session(path, "2026-12-02T10:00:00", 60.0, {"r1": {"train_s": 1.0}}, command="c", cli="x",
                         finished=False)
    bench.record_session(path, "2026-12-02T10:00:00", 120.0, {}, command="c", cli="x", finished=True)
    local = json.loads(path.read_text())
    assert local["sessions"] == [{"started": "2026-12-02T10:00:00", "wall_time_s": 120.0}]
    archived = {"command": "old", "started": "2026-12-01T08:00:00", "wall_time_s": 30.0,
                "sessions": [{"started": "2026-12-01T08:00:00", "wall_time_s": 30.0, "finished": False}],
                "timings": {"r0": {"train_s": 2.0}}}
    merged = bench.merge_benchmark(archived, local)
    assert [s["started"] for s in merged["sessions"]] == ["2026-12-01T08:00:00", "2026-12-02T10:00:00"]
    assert merged["wall_time_s"] == pytest.approx(150.0) and merged["started"] == "2026-12-01T08:00:00"
    assert merged["command"] == "c" and set(merged["timings"]) == {"r0", "r1"}
    assert bench.merge_benchmark(merged, local) == merged  # merging again changes nothing


def test_how_it_was_run_names_the_study_not_the_session(bench, tmp_path: Path) -> None:
    session = ("python benchmarks/screening/run.py --only-budget --no-report --no-results "
               "--only autoencoder-multi-50@Week4_27801 --only=byol-50@Week4_27821 --partial --set train.seed=1")
    assert bench.study_command(session) == ("python benchmarks/screening/run.py --only-budget --no-report "
                                            "--set train.seed=1")
    from biorep.study.session import prepare_study

    prep = prepare_study(bench.CONFIGS["gray"], out=tmp_path / "gray")
    _fake_study(prep)
    path = prep.out / "benchmark.json"
    path.write_text(path.read_text().replace('"python benchmarks/screening/run.py"', json.dumps(session)))
    bench.write_results({"gray": prep}, tmp_path / "RESULTS.md")
    text = (tmp_path / "RESULTS.md").read_text()
    assert "--only" not in text.replace("--only-budget", "").replace("--only RUN", "")
    assert json.loads((tmp_path / "results.json").read_text())["commands"] == [bench.study_command(session)]


def _drop_run(prep, name: str) -> None:
    RunPaths(prep.out / "runs" / name).evaluation.unlink()


def test_partial_results_name_the_unfinished_setups(bench, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Through main(): without --partial an unfinished setup stops the script; with it, it is left out and
    named, the other configuration's tables stay in RESULTS.md, and a missing baseline still stops it."""
    from biorep.study.session import prepare_study

    root = tmp_path / "runs"
    preps = {k: prepare_study(bench.CONFIGS[k], out=root / bench.CONFIGS[k].stem) for k in ("gray", "budget")}
    for prep in preps.values():
        _fake_study(prep)
    _drop_run(preps["budget"], "weak-50@Week4_27861")
    results = tmp_path / "RESULTS.md"
    argv = ["--only-budget", "--no-run", "--no-archive", "--out-root", str(root), "--results", str(results)]
    with pytest.raises(bench.Missing, match="weak-50@Week4_27861"):
        bench.main(argv)
    assert not results.exists()

    assert bench.main([*argv, "--partial"]) == 0
    text = results.read_text()
    doc = json.loads(results.with_name("results.json").read_text())
    assert set(doc["configurations"]) == {"gray", "budget"}  # --only-budget kept the DNA-channel tables
    budget = doc["configurations"]["budget"]
    assert budget["not_finished"] == ["weak-50"] and "weak-50" not in budget["setups"]
    assert set(budget["budget_curve"]["weak"]) == {"1", "4", "16"}
    assert "**Partial:** 1 setup(s)" in text and doc["configurations"]["gray"]["not_finished"] == []

    _drop_run(preps["budget"], "untrained@Week4_27801")
    with pytest.raises(bench.Missing, match="untrained@Week4_27801"):
        bench.main([*argv, "--partial"])


def _set_hardware(prep, fold: str, precision: str, wall_time_s: float | None = None) -> None:
    """Mark every trained run of ``fold`` as trained at ``precision`` (another machine), optionally with
    another training time."""
    for spec in prep.setups:
        if spec.fold != fold or spec.setup_name.startswith(("untrained", "classical", "byol")):
            continue
        path = RunPaths(prep.out / "runs" / spec.name).summary
        summary = json.loads(path.read_text())
        summary["precision"] = precision
        if wall_time_s is not None:
            summary["wall_time_s"] = wall_time_s
        write_json(path, summary)


def test_times_are_compared_only_between_runs_on_the_same_hardware(bench, tmp_path: Path) -> None:
    """A fold whose runs trained on other hardware (here: fp32 instead of bf16) is named and left out of
    the time and memory findings, which would otherwise flip; with no comparable pair they cannot tell."""
    from biorep.study.session import prepare_study

    prep = prepare_study(bench.CONFIGS["gray"], out=tmp_path / "g")
    _fake_study(prep)
    for spec in prep.setups:  # every run bf16 on the machine of the fake study
        path = RunPaths(prep.out / "runs" / spec.name).summary
        write_json(path, {**json.loads(path.read_text()), "precision": "bf16-mixed", "device": "cpu"})
    _set_hardware(prep, "Week4_27861", "32", wall_time_s=1.0)  # would make BYOL 'slower' on that fold
    bench.write_results({"gray": prep}, tmp_path / "R.md")
    text = (tmp_path / "R.md").read_text()
    gray = json.loads((tmp_path / "results.json").read_text())["configurations"]["gray"]
    assert "**Hardware differs** between the runs of fold(s) Week4_27861" in text
    assert gray["findings"]["BYOL competitive and faster"]["faster"] == "holds"
    assert gray["findings"]["BYOL competitive and faster"]["time_ratio_median"] == pytest.approx(3.0, rel=0.5)
    assert gray["setups"]["weak-none-one"]["precision"]["Week4_27861"] == "32"

    for fold in ("Week4_27801", "Week4_27821"):
        _set_hardware(prep, fold, "32")
    bench.write_results({"gray": prep}, tmp_path / "R2.md")
    gray = json.loads((tmp_path / "results.json").read_text())["configurations"]["gray"]
    byol = gray["findings"]["BYOL competitive and faster"]
    assert byol["faster"] == "cannot tell" and byol["time_ratio_median"] is None
    assert gray["findings"]["Regularized costs the most"]["verdict"] == "cannot tell"


def test_costs_compare_within_views_when_no_fold_shares_one_hardware(bench, tmp_path: Path) -> None:
    """A grid trained over sessions on different machines (here: every multi-crop run in fp32, the rest
    bf16) has no fold where all runs compare; the cost finding then compares the paradigms within each
    views and fold whose runs share hardware, and leaves out a views group that mixes machines."""
    from biorep.study.session import prepare_study

    prep = prepare_study(bench.CONFIGS["gray"], out=tmp_path / "g")
    _fake_study(prep)
    for spec in prep.setups:
        path = RunPaths(prep.out / "runs" / spec.name).summary
        precision = "32" if spec.setup_name.endswith("-multi") else "bf16-mixed"
        write_json(path, {**json.loads(path.read_text()), "precision": precision, "device": "cpu",
                          "machine": {"cpu": "AMD EPYC", "cpu_capability": "AVX512", "threads": 2}})
    bench.write_results({"gray": prep}, tmp_path / "R.md")
    cost = json.loads((tmp_path / "results.json").read_text())["configurations"]["gray"]["findings"][
        "Regularized costs the most"]
    folds = ("Week4_27801", "Week4_27821", "Week4_27861")
    views = ("none/multi", "none/one", "random/multi", "random/one")
    assert cost["compared_within"] == [f"{v} on {f}" for v in views for f in folds]
    assert cost["verdict"] == "holds" and cost["measures"] == ["holds"] * 3
    assert "runs of those views trained on one hardware" in (tmp_path / "R.md").read_text()

    # one run of a views group on another machine: that group leaves that fold's comparisons
    path = RunPaths(prep.out / "runs" / "byol-none-one@Week4_27801").summary
    summary = json.loads(path.read_text())
    write_json(path, {**summary, "machine": {**summary["machine"], "cpu": "Intel(R) Xeon(R) Processor"}})
    bench.write_results({"gray": prep}, tmp_path / "R2.md")
    cost = json.loads((tmp_path / "results.json").read_text())["configurations"]["gray"]["findings"][
        "Regularized costs the most"]
    assert "none/one on Week4_27801" not in cost["compared_within"] and len(cost["compared_within"]) == 11


def test_sigterm_ends_the_script_with_one_line_and_143(bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A SIGTERM while a study trains (``sigterm_as_interrupt`` raises ``Terminated``) ends main() with
    the resume hint and the signal's status, not a traceback; the session is still recorded."""
    import biorep.study.session as session
    from biorep.errors import Terminated

    def terminated(*args, **kwargs):
        raise Terminated()

    monkeypatch.setattr(session, "run_prepared", terminated)
    root = tmp_path / "runs"
    rc = bench.main(["--only-budget", "--no-archive", "--no-report", "--out-root", str(root),
                     "--results", str(tmp_path / "RESULTS.md")])
    err = capsys.readouterr().err
    assert rc == 143
    assert "interrupted (SIGTERM)" in err and "run the same command again to resume" in err
    assert (root / bench.CONFIGS["budget"].stem / "benchmark.json").is_file()
    assert not (tmp_path / "RESULTS.md").exists()


def test_only_rgb_runs_the_three_channel_study_alone(bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """``--only-rgb --gpu`` trains the three-channel configuration's 50-epoch folder and nothing of the
    DNA channel's (``--rgb`` alone also runs the DNA-channel study); it excludes ``--only-budget``."""
    import biorep.study.session as session

    ran: list[str] = []
    monkeypatch.setattr(session, "run_prepared", lambda prep, **kw: ran.append(prep.out.name))
    root = tmp_path / "runs"
    rc = bench.main(["--only-rgb", "--gpu", "--no-archive", "--no-report", "--no-results",
                     "--out-root", str(root)])
    assert rc == 0 and ran == [bench.CONFIGS["rgb"].stem + "-e50"]
    with pytest.raises(SystemExit) as exc:
        bench.main(["--only-rgb", "--only-budget", "--no-run"])
    assert exc.value.code == 2 and "exclude each other" in capsys.readouterr().err
