"""Sphering fitted on controls: identity covariance afterwards; the sphered mAP evaluations."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest

from biorep.errors import ConfigError, DataError
from biorep.evaluate import EVALUATIONS, EvalContext, run_evaluation
from biorep.evaluate.evaluator import check_options
from biorep.evaluate.profiles import map_bootstrap, sphere_to_controls
from biorep.evaluate.sphering import fit_sphering


def _correlated(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) * np.linspace(3.0, 0.2, d)
    return rng.normal(size=(n, d)) @ mix + rng.normal(size=d) * 5


@pytest.mark.parametrize("method", ["zca", "zca-cor"])
def test_controls_have_identity_covariance_after_sphering(method: str) -> None:
    ctrl = _correlated(2000, 8)
    assert not np.allclose(np.cov(ctrl, rowvar=False), np.eye(8), atol=0.5)
    s = fit_sphering(ctrl, method=method)
    out = s.transform(ctrl)
    assert s.rank == 8
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-8)
    np.testing.assert_allclose(np.cov(out, rowvar=False), np.eye(8), atol=1e-4)
    # ZCA: the whitening matrix is symmetric (the least rotation of the data)
    np.testing.assert_allclose(s.matrix, s.matrix.T, atol=1e-10)


def test_rank_deficient_controls_whiten_on_their_span_only() -> None:
    rng = np.random.default_rng(1)
    ctrl = rng.normal(size=(20, 3)) @ rng.normal(size=(3, 10))  # rank 3 in 10 dimensions
    s = fit_sphering(ctrl)
    assert s.rank == 3
    out = s.transform(ctrl)
    evals = np.sort(np.linalg.eigvalsh(np.cov(out, rowvar=False)))
    np.testing.assert_allclose(evals[-3:], 1.0, atol=1e-4)  # identity on the 3 directions kept
    np.testing.assert_allclose(evals[:-3], 0.0, atol=1e-6)  # null space dropped, not blown up
    far = s.transform(ctrl[:1] + rng.normal(size=(1, 10)) * 1e-3)
    assert np.abs(far).max() < 100


def test_sphering_errors() -> None:
    with pytest.raises(ConfigError, match="method"):
        fit_sphering(np.zeros((5, 2)), method="pca")
    with pytest.raises(DataError, match="do not vary"):
        fit_sphering(np.ones((5, 2)))
    meta = pd.DataFrame({"c": ["a", "b", "b"]})
    with pytest.raises(DataError, match="at least 2 control"):
        sphere_to_controls(np.zeros((3, 2)), meta, {"c": "a"})


def test_sphere_to_controls_on_selected_rows() -> None:
    x = np.vstack([_correlated(500, 4, seed=2), _correlated(100, 4, seed=3)])
    meta = pd.DataFrame({"compound": ["DMSO"] * 500 + ["drug"] * 100})
    out = sphere_to_controls(x, meta, {"compound": "DMSO"})
    np.testing.assert_allclose(np.cov(out[:500], rowvar=False), np.eye(4), atol=1e-3)


def _fields(seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    rows, feats = [], []
    for dose, shift in ((0, 0.0), (15, 1.0), (50, 2.0)):
        cpd = "DMSO" if dose == 0 else "chx"
        for site in range(4):
            for _ in range(10):
                feats.append(rng.normal(size=6) + shift)
                rows.append({"plate": "P", "well": f"w{dose}", "site": site, "compound": cpd, "dose": dose})
    return np.asarray(feats, dtype=np.float32), pd.DataFrame(rows)


def test_sphered_map_evaluations_registered_with_the_same_options() -> None:
    for name in ("replicate_map", "label_map"):
        plain = inspect.signature(EVALUATIONS.get(name)).parameters
        sph = inspect.signature(EVALUATIONS.get(f"{name}_sphered")).parameters
        assert list(plain) == list(sph)
        assert plain["sphere"].default is None and sph["sphere"].default == "zca"
    check_options("label_map_sphered", {"profile_by": ["well", "site"], "bootstrap": 100}, complete=True)

    z, meta = _fields()
    ctx = EvalContext(z, meta, label_column="dose")
    opts = dict(profile_by=["plate", "well", "site"], label_column="dose", exclude={"compound": "DMSO"},
                control={"compound": "DMSO"}, null_size=100, bootstrap=200)
    plain = run_evaluation("label_map", ctx, **opts)
    sph = run_evaluation("label_map_sphered", ctx, **opts)
    assert plain.name == "label_map" and sph.name == "label_map_sphered"
    assert plain.summary["sphere"] is None and sph.summary["sphere"] == "zca"
    b = sph.summary["bootstrap"]
    assert b["metric"] == "mean_map" and len(b["replicates"]) == 200
    assert b["ci_low"] <= sph.summary["mean_map"] <= b["ci_high"]
    rep = run_evaluation("replicate_map_sphered", ctx, treatment=["compound", "dose"],
                         profile_by=["plate", "well", "site"], control={"compound": "DMSO"}, null_size=100,
                         bootstrap=50)
    assert rep.summary["mean_map"] > 0.9 and rep.summary["bootstrap"]["n_units"] == 8  # treated fields


def test_map_bootstrap_value_is_mean_over_groups() -> None:
    ap = pd.DataFrame({"g": ["a", "a", "b"], "average_precision": [1.0, 0.5, 0.0], "n_pos_pairs": [1, 1, 1]})
    b = map_bootstrap(ap, ["g"], n_boot=100)
    assert b["value"] == pytest.approx((0.75 + 0.0) / 2)


def test_normalize_leaves_a_feature_constant_on_controls_centred_only() -> None:
    from biorep.evaluate import normalize_to_controls

    x = np.array([[0.0, 1.0], [0.0, 3.0], [0.5, 5.0]])
    meta = pd.DataFrame({"c": ["ctl", "ctl", "drug"]})
    out = normalize_to_controls(x, meta, {"c": "ctl"})
    assert out[2, 0] == pytest.approx(0.5, rel=1e-5)  # not 0.5 / 1e-6
    assert out[2, 1] == pytest.approx(3.0, rel=1e-5)
