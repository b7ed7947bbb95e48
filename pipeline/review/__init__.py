"""The review queue: selection policies, CSV + HTML batches for annotators, validated import, status."""

from .csvio import COLUMNS, EDITABLE, READ_ONLY, neutralise, unneutralise
from .importer import ImportProblem, ImportReport, import_review_csv
from .policy import Policy, parse_policy, select
from .queue import (
    AUTO_REVIEWER,
    BatchStatus,
    accepted_image_ids,
    auto_review,
    batch_rows,
    candidates,
    export_batches,
    format_status,
    latest_decisions,
    review_status,
    write_batch_files,
)
from .stage import ReviewConfig, run_review, run_stage

__all__ = [
    "COLUMNS",
    "EDITABLE",
    "READ_ONLY",
    "neutralise",
    "unneutralise",
    "ImportProblem",
    "ImportReport",
    "import_review_csv",
    "Policy",
    "parse_policy",
    "select",
    "AUTO_REVIEWER",
    "BatchStatus",
    "accepted_image_ids",
    "auto_review",
    "batch_rows",
    "candidates",
    "export_batches",
    "format_status",
    "latest_decisions",
    "review_status",
    "write_batch_files",
    "ReviewConfig",
    "run_review",
    "run_stage",
]
