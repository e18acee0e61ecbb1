"""Karyogram layout: class slots, doubtful marks, the unassigned slot."""

from __future__ import annotations

import io

import matplotlib.image as mpimg
import numpy as np
import pytest
from report_fakes import fake_crops

from biorep.report.karyogram import KARYOGRAM_CLASSES, KARYOGRAM_ROWS, canonical_class, render_karyogram


def _decode(png: bytes) -> np.ndarray:
    return mpimg.imread(io.BytesIO(png), format="png")[..., :3]


def _red_pixels(img: np.ndarray) -> int:
    return int(((img[..., 0] > 0.8) & (img[..., 1] < 0.3) & (img[..., 2] < 0.3)).sum())


def test_classic_rows() -> None:
    assert [len(r) for r in KARYOGRAM_ROWS] == [5, 7, 6, 6]
    assert KARYOGRAM_CLASSES[-2:] == ("X", "Y") and len(KARYOGRAM_CLASSES) == 24


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("7", "7"),
        (7, "7"),
        ("chr7", "7"),
        ("clase12", "12"),
        ("x", "X"),
        (23, "X"),
        ("24", "Y"),
        ("25", None),
        (None, None),
        ("", None),
        (float("nan"), None),
        ("foo", None),
    ],
)
def test_canonical_class(name: object, expected: str | None) -> None:
    assert canonical_class(name) == expected


def test_doubtful_assignments_are_marked_red() -> None:
    crops, assigned, _ = fake_crops()
    keep = [i for i, a in enumerate(assigned) if a is not None and a != "25"]
    crops = [crops[i] for i in keep]
    assigned = [assigned[i] for i in keep]
    clean = _decode(render_karyogram(crops, assigned, [False] * len(crops), "clean"))
    flagged = [i in (0, 10) for i in range(len(crops))]
    marked = _decode(render_karyogram(crops, assigned, flagged, "two doubtful"))
    assert _red_pixels(clean) == 0
    assert _red_pixels(marked) > 100


def test_unassigned_crops_get_their_own_slot_below() -> None:
    crops, assigned, doubtful = fake_crops()
    with_unassigned = _decode(render_karyogram(crops, assigned, doubtful, "all"))
    only_assigned = _decode(render_karyogram(crops[:-2], assigned[:-2], doubtful[:-2], "assigned"))
    assert with_unassigned.shape[0] > only_assigned.shape[0] + 40
    # Class names such as "chr1" or 23 (= X) land in their slots: no unassigned row is added.
    renamed = [f"chr{a}" for a in assigned[:-2]]
    assert _decode(render_karyogram(crops[:-2], renamed, None)).shape[0] <= only_assigned.shape[0]


def test_channel_axis_is_squeezed_and_bad_input_rejected() -> None:
    crop = np.full((1, 30, 10), 0.5, np.float32)
    assert _decode(render_karyogram([crop, crop[0, :, :, None]], ["1", "1"], [False, False])).size > 0
    with pytest.raises(ValueError, match="same length"):
        render_karyogram([crop], ["1", "2"], [False])
    with pytest.raises(ValueError, match="2-D"):
        render_karyogram([np.zeros((3, 10, 10))], ["1"], [False])


def test_draw_karyograms_reads_the_crop_files_flagged_first_and_removes_stale_ones(tmp_path) -> None:
    from report_fakes import make_assembly

    from biorep.report.karyogram import draw_karyograms

    crops = make_assembly(tmp_path / "cells", n_karyograms=3)
    crops.loc[crops["karyogram"] == "2.1", "flagged"] = True
    out = tmp_path / "karyotype"
    out.mkdir()
    (out / "old.png").write_bytes(b"x")
    assert draw_karyograms(crops, out, max_images=2) == ["2.1.png", "0.1.png"]
    assert sorted(p.name for p in out.glob("*.png")) == ["0.1.png", "2.1.png"]
    img = _decode((out / "0.1.png").read_bytes())
    assert _red_pixels(img) > 100  # its two doubtful crops are framed
    # an unreadable crop file is drawn as a grey box, not an error
    crops.loc[0, "file"] = str(tmp_path / "missing.png")
    assert draw_karyograms(crops, out, max_images=1) == ["2.1.png"]
    assert [p.name for p in out.glob("*.png")] == ["2.1.png"]
