"""kNN (faiss) and linear probes: exact neighbours, DINO-style weighted vote, registry adapters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from biorep.errors import ConfigError
from biorep.evaluate import EvalContext, knn_predict_proba, knn_search, linear_probe_proba, run_evaluation


def _blobs(n_per: int, k: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 3
    y = np.repeat(np.arange(k), n_per)
    return (centres[y] + rng.normal(size=(len(y), d))).astype(np.float32), y


def test_knn_search_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    db, q = rng.normal(size=(200, 16)).astype(np.float32), rng.normal(size=(7, 16)).astype(np.float32)
    sims, idx = knn_search(db, q, 5)
    dbn = db / np.linalg.norm(db, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    brute = qn @ dbn.T
    assert np.array_equal(idx, np.argsort(-brute, axis=1)[:, :5])
    assert np.allclose(sims, np.take_along_axis(brute, idx, 1), atol=1e-5)
    d2, idx2 = knn_search(db, q, 3, metric="l2")
    full = ((q[:, None] - db[None]) ** 2).sum(-1)
    assert np.array_equal(idx2, np.argsort(full, axis=1)[:, :3])
    assert knn_search(db[:2], q, 5)[1].shape == (7, 2)  # k capped at the database size
    with pytest.raises(ConfigError):
        knn_search(db, q, 3, metric="manhattan")


def test_knn_vote_is_similarity_weighted() -> None:
    train = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], dtype=np.float32)
    y = np.array([0, 1, 1])
    query = np.array([[1.0, 0.1]], dtype=np.float32)
    t = 0.1
    p = knn_predict_proba(train, y, query, 2, k=3, temperature=t)
    qn = query / np.linalg.norm(query)
    s = (train / np.linalg.norm(train, axis=1, keepdims=True)) @ qn.ravel()
    w = np.exp(s / t)
    expected = np.array([w[0], w[1] + w[2]]) / w.sum()
    assert p[0] == pytest.approx(expected, rel=1e-5)
    # unweighted majority vote: two of three neighbours are class 1
    assert knn_predict_proba(train, y, query, 2, k=3, temperature=0)[0] == pytest.approx([1 / 3, 2 / 3])
    # unlabelled training rows (-1) never vote
    p2 = knn_predict_proba(train, np.array([0, -1, -1]), query, 2, k=3)
    assert p2[0] == pytest.approx([1.0, 0.0])


def test_linear_probe_handles_unseen_class() -> None:
    z, y = _blobs(30, 3, 8, seed=2)
    p = linear_probe_proba(z, y, z, 4)  # class 3 never in training
    assert p.shape == (len(z), 4) and np.allclose(p[:, 3], 0) and np.allclose(p.sum(1), 1)
    assert (p.argmax(1) == y).mean() > 0.95


def test_probe_registry_on_a_split() -> None:
    z, y = _blobs(40, 4, 16, seed=3)
    meta = pd.DataFrame({"cls": np.array(list("abcd"))[y], "case": np.arange(len(y)) % 10})
    test = np.flatnonzero(meta["case"] >= 8)
    ctx = EvalContext(z, meta, label_column="cls", test_idx=test)
    knn = run_evaluation("knn", ctx, k=5)
    lin = run_evaluation("linear", ctx)
    assert knn.summary["n"] == len(test) == len(knn.table)
    assert knn.summary["accuracy"] > 0.9 and lin.summary["accuracy"] > 0.9
    assert knn.summary["classes"] == ["a", "b", "c", "d"]
    with pytest.raises(ConfigError, match="unknown option"):
        run_evaluation("knn", ctx, kk=5)


def test_knn_warns_when_k_exceeds_a_typical_class(caplog: pytest.LogCaptureFixture) -> None:
    z, y = _blobs(8, 3, 4, seed=1)
    meta = pd.DataFrame({"cls": np.array(list("abc"))[y]})
    ctx = EvalContext(z, meta, label_column="cls", test_idx=np.arange(0, len(y), 4))
    run_evaluation("knn", ctx, k=3)
    assert "typical class" not in caplog.text
    run_evaluation("knn", ctx, k=20)
    assert "knn: k=20 is more than the 6 training images of a typical class" in caplog.text
