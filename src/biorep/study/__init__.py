"""Grids of runs (e.g. the screening study's 16 setups), results tables, folds, their reports and archives."""

from biorep.study.archive import archivable, archive_study, check_checkpoints, is_restored, restore_study
from biorep.study.folds import (
    CANNOT_TELL,
    DOES_NOT_HOLD,
    HOLDS,
    FoldValue,
    Task,
    aggregate_folds,
    compare_folds,
    fold_values,
    task_value,
    verdict,
)
from biorep.study.grid import SetupSpec, StudyConfig, expand_grid, load_study, setup_config, study_setups
from biorep.study.runner import RESULTS_CSV, RESULTS_MD, STUDY, run_state, run_study
from biorep.study.session import PreparedStudy, StudyResult, prepare_study, run_prepared
from biorep.study.table import flatten, results_table, run_row

__all__ = [
    "CANNOT_TELL",
    "DOES_NOT_HOLD",
    "HOLDS",
    "RESULTS_CSV",
    "RESULTS_MD",
    "STUDY",
    "FoldValue",
    "PreparedStudy",
    "SetupSpec",
    "StudyConfig",
    "StudyResult",
    "Task",
    "aggregate_folds",
    "archivable",
    "archive_study",
    "check_checkpoints",
    "compare_folds",
    "expand_grid",
    "flatten",
    "fold_values",
    "is_restored",
    "load_study",
    "prepare_study",
    "restore_study",
    "results_table",
    "run_prepared",
    "run_row",
    "run_state",
    "run_study",
    "setup_config",
    "study_setups",
    "task_value",
    "verdict",
]
