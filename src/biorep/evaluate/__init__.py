"""Evaluate frozen representations: embed, probe, screen, profile, assemble karyotypes.

Everything works on ``(embeddings (N, D), meta DataFrame)`` pairs plus, where a model has a
classifier, class probabilities/logits. Each evaluation is registered by name in
:data:`EVALUATIONS` and run with :func:`run_evaluation` on an :class:`EvalContext`.

Example:
    >>> from biorep.evaluate import EvalContext, run_evaluation
    >>> ctx = EvalContext(z, meta, label_column="chromosome", train_idx=tr, test_idx=te)  # doctest: +SKIP
    >>> run_evaluation("knn", ctx, k=20).summary["accuracy"]  # doctest: +SKIP
"""

from __future__ import annotations

from biorep.evaluate.classification import binary_metrics, classification_metrics, predictions_table
from biorep.evaluate.clustering import DEFAULT_MIN_CLUSTER_SIZES, cluster_groups, cluster_metrics, umap_reduce
from biorep.evaluate.context import EVALUATIONS, EvalContext, EvalResult, run_evaluation, to_jsonable
from biorep.evaluate.embed import embed_dataset, read_embeddings, write_embeddings
from biorep.evaluate.karyotype import assemble_karyotypes, assign_karyogram, chromosome_columns
from biorep.evaluate.probes import knn_predict_proba, knn_search, linear_probe_proba
from biorep.evaluate.profiles import (
    aggregate_profiles,
    label_map,
    normalize_to_controls,
    nsc_accuracy,
    replicate_map,
)
from biorep.evaluate.screening import drug_similarity, select_mlp, treated_vs_control
from biorep.evaluate.selectors import Selector, describe, select

__all__ = [
    "DEFAULT_MIN_CLUSTER_SIZES",
    "EVALUATIONS",
    "EvalContext",
    "EvalResult",
    "Selector",
    "aggregate_profiles",
    "assemble_karyotypes",
    "assign_karyogram",
    "binary_metrics",
    "chromosome_columns",
    "classification_metrics",
    "cluster_groups",
    "cluster_metrics",
    "describe",
    "drug_similarity",
    "embed_dataset",
    "knn_predict_proba",
    "knn_search",
    "label_map",
    "linear_probe_proba",
    "normalize_to_controls",
    "nsc_accuracy",
    "predictions_table",
    "read_embeddings",
    "replicate_map",
    "run_evaluation",
    "select",
    "select_mlp",
    "to_jsonable",
    "treated_vs_control",
    "umap_reduce",
    "write_embeddings",
]
