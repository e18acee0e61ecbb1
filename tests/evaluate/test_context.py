"""The evaluation context, registry lookup, selectors and JSON conversion."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from biorep.errors import ConfigError, DataError
from biorep.evaluate import EVALUATIONS, EvalContext, EvalResult, describe, run_evaluation, select, to_jsonable


def test_registry_has_every_evaluation() -> None:
    expected = {"classification", "knn", "linear", "similarity", "treated_vs_control", "clustering",
                "replicate_map", "label_map", "nsc", "karyotype"}
    assert expected <= set(EVALUATIONS.names())
    assert callable(EVALUATIONS.get("knn"))
    with pytest.raises(ConfigError, match="unknown evaluation"):
        EVALUATIONS.get("nope")


def test_context_labels_split_and_validation() -> None:
    meta = pd.DataFrame({"y": ["10", "2", None, "X", "2"], "plate": [1, 1, 2, 2, 3]})
    ctx = EvalContext(np.zeros((5, 2)), meta, label_column="y", test_idx=np.array([3, 4]))
    assert ctx.class_names() == ["2", "10", "X"]  # numbers sort numerically
    assert ctx.targets().tolist() == [1, 0, -1, 2, 0]
    train, test = ctx.split()
    assert train.tolist() == [0, 1, 2] and test.tolist() == [3, 4]
    ctx2 = EvalContext(np.zeros((5, 2)), meta, label_column="y", classes=["2", "X"])
    assert ctx2.targets().tolist() == [-1, 0, -1, 1, 0]  # unknown class → -1
    with pytest.raises(DataError, match="rows"):
        EvalContext(np.zeros((4, 2)), meta)
    with pytest.raises(DataError, match="no column"):
        EvalContext(np.zeros((5, 2)), meta, group_columns=["well"])
    with pytest.raises(DataError, match="probs"):
        EvalContext(np.zeros((5, 2)), meta, probs=np.ones((4, 2)))
    probs = EvalContext(np.zeros((5, 2)), meta, logits=np.zeros((5, 4))).probabilities()
    assert np.allclose(probs, 0.25)


def test_run_evaluation_rejects_unknown_options() -> None:
    ctx = EvalContext(np.zeros((2, 2)), pd.DataFrame({"y": ["a", "b"]}), label_column="y")
    with pytest.raises(ConfigError, match="allowed: k, temperature"):
        run_evaluation("knn", ctx, neighbours=3)


def test_selectors() -> None:
    meta = pd.DataFrame({"compound": ["DMSO", "cyc", "cyc", "cyc"], "dose": [0.0, 5.0, 15.0, 50.0],
                         "treated": [False, True, True, True]})
    assert select(meta, {"compound": "cyc", "dose": 5}).tolist() == [False, True, False, False]
    assert select(meta, {"dose": ["15", 50]}).tolist() == [False, False, True, True]
    assert select(meta, {"treated": False}).tolist() == [True, False, False, False]
    assert describe({"compound": "DMSO", "dose": [5, 15]}) == "compound=DMSO & dose∈['15', '5']"
    with pytest.raises(DataError, match="'drug'"):
        select(meta, {"drug": "x"})
    with pytest.raises(ConfigError):
        select(meta, {})


def test_result_save_is_atomic(tmp_path) -> None:  # type: ignore[no-untyped-def]
    res = EvalResult("knn", {"accuracy": np.float64(0.5)}, pd.DataFrame({"group": ["a"], "v": [1]}))
    paths = res.save(tmp_path / "eval")
    assert json.loads(paths["json"].read_text())["summary"] == {"accuracy": 0.5}
    assert pd.read_csv(paths["csv"]).to_dict(orient="list") == {"group": ["a"], "v": [1]}
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == ["knn.csv", "knn.json"]


def test_to_jsonable() -> None:
    res = EvalResult("x", {"a": np.float32(0.5), "b": np.nan, "c": np.arange(2), "d": (np.int64(3), None),
                           "e": {1: np.bool_(True)}, "f": pd.DataFrame({"v": [1.0]})})
    out = res.to_dict()
    assert out == {"name": "x", "summary": {"a": 0.5, "b": None, "c": [0, 1], "d": [3, None],
                                             "e": {"1": True}, "f": [{"v": 1.0}]}}
    json.dumps(out)
    assert to_jsonable(float("inf")) is None
