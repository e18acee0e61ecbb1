"""Benchmark biorep's exact cosine kNN (faiss IndexFlatIP) against scikit-learn's brute force.

Usage:
    .venv/bin/python benchmarks/knn/bench_knn.py                       # 1M × 128 database, 10k queries
    .venv/bin/python benchmarks/knn/bench_knn.py --n-db 100000 --n-query 1000 --compare-db 20000

Prints one JSON object (timings in seconds) and a Markdown table row; paste into RESULTS.md.
Random Gaussian vectors: exact search cost does not depend on the data.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def _timed(fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-db", type=int, default=1_000_000)
    ap.add_argument("--n-query", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--compare-db", type=int, default=100_000, help="database size for the sklearn ratio")
    ap.add_argument("--compare-query", type=int, default=1_000)
    ap.add_argument("--threads", type=int, default=None, help="faiss/BLAS threads (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import faiss
    from sklearn.neighbors import NearestNeighbors

    from biorep.evaluate.probes import knn_predict_proba, knn_search

    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    db = rng.standard_normal((args.n_db, args.dim), dtype=np.float32)
    q = rng.standard_normal((args.n_query, args.dim), dtype=np.float32)

    (_, idx), t_search = _timed(lambda: knn_search(db, q, args.k))
    labels = rng.integers(0, 24, size=args.n_db)
    _, t_proba = _timed(lambda: knn_predict_proba(db, labels, q, 24, k=args.k))

    # the same search, smaller, against scikit-learn brute force (cosine)
    dbs, qs = db[: args.compare_db], q[: args.compare_query]
    (_, idx_f), t_faiss_small = _timed(lambda: knn_search(dbs, qs, args.k))
    nn = NearestNeighbors(n_neighbors=args.k, algorithm="brute", metric="cosine", n_jobs=args.threads)
    nn.fit(dbs)
    (_, idx_s), t_sklearn_small = _timed(lambda: nn.kneighbors(qs))
    agree = float(np.mean([len(set(a) & set(b)) / args.k for a, b in zip(idx_f, idx_s)]))

    result = {
        "n_db": args.n_db, "n_query": args.n_query, "dim": args.dim, "k": args.k,
        "faiss_search_s": round(t_search, 3),
        "faiss_queries_per_s": round(args.n_query / t_search, 1),
        "knn_predict_proba_s": round(t_proba, 3),
        "compare_db": args.compare_db, "compare_query": args.compare_query,
        "faiss_small_s": round(t_faiss_small, 4), "sklearn_brute_small_s": round(t_sklearn_small, 4),
        "sklearn_over_faiss": round(t_sklearn_small / t_faiss_small, 2),
        "neighbour_agreement": round(agree, 4),
        "faiss_threads": faiss.omp_get_max_threads(), "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(), "faiss": faiss.__version__,
    }
    print(json.dumps(result, indent=1))
    print(f"| {args.n_db:,} × {args.dim} | {args.n_query:,} | {args.k} | {t_search:.2f} s "
          f"({args.n_query / t_search:,.0f} q/s) | {t_proba:.2f} s | "
          f"{t_sklearn_small / t_faiss_small:.1f}× ({args.compare_db:,} × {args.compare_query:,}) |")
    assert idx.shape == (args.n_query, args.k)


if __name__ == "__main__":
    main()
