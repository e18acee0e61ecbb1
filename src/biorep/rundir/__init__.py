"""The run directory's one owner: its file names, the one atomic writer, typed records, run state.

Every stage reads and writes run directories through this package (a ground-level module: it
imports nothing of biorep but :mod:`biorep.errors`), so the layout is defined once:

```
RUN/config.yaml               resolved RunConfig                      CONFIG
RUN/data.json                 DataRecord: data set, classes, splits   DATA
RUN/state.json                RunState: running|finished|failed|interrupted   STATE
RUN/checkpoints/last.ckpt     latest state (every epoch and every N steps)     CKPT_DIR, LAST
RUN/checkpoints/best.ckpt     best epoch by summary.best_metric                BEST
RUN/metrics.csv               one row per epoch                                METRICS
RUN/summary.json              SummaryRecord: timings, memory, best metric      SUMMARY
RUN/embeddings/<stem>.parquet|.h5ad|.logits.npy|.json                          EMBEDDINGS_DIR, EMBEDDING_FILES
RUN/evaluation.json, RUN/evaluation/<name>.csv|json                             EVALUATION, EVALUATION_DIR
RUN/karyotype/summary.json|assignments.csv|<karyogram>.png   KARYOTYPE_DIR, KARYOTYPE_SUMMARY, _ASSIGNMENTS
RUN/report.html                                                                 REPORT
```
"""

from biorep.rundir.atomic import (
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    locked,
    output_file,
    read_json,
    read_yaml,
    to_jsonable,
    update_json,
    write_json,
    write_yaml,
)
from biorep.rundir.layout import (
    BEST,
    CKPT_DIR,
    CONFIG,
    CORRECTIONS,
    DATA,
    EMBEDDING_FILES,
    EMBEDDINGS_DIR,
    ENSEMBLE,
    EVALUATION,
    EVALUATION_DIR,
    FIGURES_DIR,
    KARYOTYPE_ASSIGNMENTS,
    KARYOTYPE_DIR,
    KARYOTYPE_SUMMARY,
    LAST,
    METRICS,
    REPORT,
    REVIEW,
    STATE,
    SUMMARY,
    RunPaths,
    embedding_files,
)
from biorep.rundir.records import DataRecord, GeometryRecord, SummaryRecord, read_data, read_summary
from biorep.rundir.state import (
    RunState,
    Status,
    check_usable,
    is_rank_zero_process,
    read_state,
    write_state,
)

__all__ = [
    "ENSEMBLE",
    "BEST",
    "CKPT_DIR",
    "CONFIG",
    "CORRECTIONS",
    "DATA",
    "EMBEDDINGS_DIR",
    "EMBEDDING_FILES",
    "EVALUATION",
    "EVALUATION_DIR",
    "FIGURES_DIR",
    "KARYOTYPE_ASSIGNMENTS",
    "KARYOTYPE_DIR",
    "KARYOTYPE_SUMMARY",
    "LAST",
    "METRICS",
    "REPORT",
    "REVIEW",
    "STATE",
    "SUMMARY",
    "DataRecord",
    "GeometryRecord",
    "RunPaths",
    "RunState",
    "Status",
    "SummaryRecord",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_usable",
    "embedding_files",
    "is_rank_zero_process",
    "locked",
    "read_data",
    "read_json",
    "read_state",
    "read_summary",
    "read_yaml",
    "to_jsonable",
    "update_json",
    "write_json",
    "write_state",
    "write_yaml",
]
