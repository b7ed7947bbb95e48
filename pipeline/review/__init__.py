"""The review queue: automatic consistency checks, selection policies, CSV + HTML batches for annotators, validated
import, status.

Modules: :mod:`.queries` (reading the review state), :mod:`.policy` (selection and triage), :mod:`.queue` (batches
and automatic decisions), :mod:`.csvio` (the CSV format), :mod:`.sheet` (the self-contained HTML contact sheet),
:mod:`.importer` (validated import), :mod:`.checks` and :mod:`.encoders` (identity and view consistency scores),
:mod:`.status`, :mod:`.stage` (the pipeline stage).
"""

from data_manifests.enums import AUTO_REVIEWER

from .csvio import COLUMNS, EDITABLE, ID_PREFIX, READ_ONLY, export_id, neutralise, unneutralise
from .importer import ImportProblem, ImportReport, import_review_csv
from .policy import Bands, Policy, parse_policy, select, triage
from .queries import accepted_image_ids, candidates, image_info, latest_decisions
from .queue import auto_review, batch_rows, export_batches, write_batch_files
from .stage import ReviewConfig, run_review, run_stage
from .status import BatchStatus, format_status, review_status

__all__ = [
    "COLUMNS",
    "EDITABLE",
    "ID_PREFIX",
    "READ_ONLY",
    "export_id",
    "neutralise",
    "unneutralise",
    "ImportProblem",
    "ImportReport",
    "import_review_csv",
    "Bands",
    "Policy",
    "parse_policy",
    "select",
    "triage",
    "AUTO_REVIEWER",
    "BatchStatus",
    "accepted_image_ids",
    "auto_review",
    "batch_rows",
    "candidates",
    "export_batches",
    "format_status",
    "image_info",
    "latest_decisions",
    "review_status",
    "write_batch_files",
    "ReviewConfig",
    "run_review",
    "run_stage",
]
