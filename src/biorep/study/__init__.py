"""Grids of runs (e.g. the screening study's 16 setups), results tables and their reports."""

from biorep.study.grid import SetupSpec, StudyConfig, expand_grid, load_study, setup_config
from biorep.study.runner import run_state, run_study
from biorep.study.table import flatten, results_table, run_row

__all__ = [
    "SetupSpec",
    "StudyConfig",
    "expand_grid",
    "flatten",
    "load_study",
    "results_table",
    "run_row",
    "run_state",
    "run_study",
    "setup_config",
]
