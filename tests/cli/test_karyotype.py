"""``biorep karyotype``: constrained assembly per karyogram, files, figures, evaluation.json entry."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from biorep.training import load_run


def test_karyotype_improves_and_respects_the_constraint(karyotype_copy: Path, cli: Callable) -> None:
    code, out, err = cli("karyotype", karyotype_copy, "--max-images", "2", "--no-progress")
    assert code == 0, err
    assert "accuracy after (assigned)" in out
    folder = karyotype_copy / "karyotype"
    crops = pd.read_csv(folder / "assignments.csv", dtype={"karyogram": str, "true": str, "assigned": str,
                                                          "argmax": str})
    run = load_run(karyotype_copy)
    assert len(crops) == len(run.splits.test)
    assert crops["sample_index"].tolist() == run.splits.test.tolist()
    summary = json.loads((folder / "summary.json").read_text())
    before, after = summary["accuracy_argmax"], summary["accuracy_assigned"]
    assert 0 <= before <= after <= 1 and after > before  # the constraint fixes some argmax errors
    assert before == (crops["argmax"] == crops["true"]).mean()
    assert after == (crops["assigned"] == crops["true"]).mean()
    limits = {**{str(i): 2 for i in range(1, 23)}, "X": 2, "Y": 1}
    for _, cell in crops[~crops["flagged"]].groupby("karyogram"):
        counts = cell["assigned"].value_counts()
        assert all(n <= limits[c] for c, n in counts.items()), counts
    assert len(summary["images"]) == 2
    for name in summary["images"]:
        assert (folder / name).read_bytes()[:4] == b"\x89PNG"
    assert len(list(folder.glob("*.png"))) == 2
    stored = json.loads((karyotype_copy / "evaluation.json").read_text())["karyotype"]
    assert stored["summary"]["accuracy_assigned"] == after and stored["n"] == len(crops)

    # --json prints one object; fewer figures removes the stale ones
    code, out, _ = cli("karyotype", karyotype_copy, "--max-images", "0", "--json", "-o", "doubt_threshold=0.9")
    assert code == 0
    again = json.loads(out)
    assert again["doubt_threshold"] == 0.9 and again["images"] == [] and not list(folder.glob("*.png"))
    assert again["n_doubtful"] >= summary["n_doubtful"]


def test_karyotype_needs_a_chromosome_classifier(cells_copy: Path, karyotype_copy: Path, cli: Callable) -> None:
    code, _, err = cli("karyotype", cells_copy)
    assert code == 2 and "has no classifier" in err
    code, _, err = cli("karyotype", karyotype_copy, "-o", "nonsense=1")
    assert code == 2 and "unknown option(s) nonsense" in err
    code, _, err = cli("karyotype", karyotype_copy, "-o", "karyogram_column=cell", "--no-progress")
    assert code == 2 and "data synthetic-karyotype: no karyogram column 'cell'" in err, err
    assert "-o karyogram_column=NAME" in err and "Traceback" not in err
    assert not (karyotype_copy / "karyotype").exists()
