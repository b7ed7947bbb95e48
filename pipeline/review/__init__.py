"""The review queue: automatic consistency checks, selection policies, CSV + HTML batches for annotators, validated
import, status.

Modules: :mod:`.queries` (reading the review state), :mod:`.policy` (selection and triage), :mod:`.queue` (queueing
selected images: batches for people, or automatic decisions), :mod:`.batches` (forming batches and their first
rows), :mod:`.batch_files` (a batch's CSV rows and files), :mod:`.hashing` (image sha256), :mod:`.csvio` (the CSV
format), :mod:`.sheet` (the self-contained HTML contact sheet), :mod:`.importer` (validated import), :mod:`.checks`
and :mod:`.encoders` (identity and view consistency scores), :mod:`.status`, :mod:`.stage` (the pipeline stage).
What the review accepted is asked through :func:`data_manifests.queries.accepted_image_ids`.
"""

from data_manifests.enums import AUTO_REVIEWER

from .batch_files import batch_rows, write_batch_files
from .csvio import COLUMNS, EDITABLE, ID_PREFIX, READ_ONLY, export_id, neutralise, unneutralise
from .importer import ImportProblem, ImportReport, import_review_csv
from .policy import Bands, Policy, parse_policy, select, triage
from .queries import candidates, image_info
from .queue import auto_review, export_batches
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
    "auto_review",
    "batch_rows",
    "candidates",
    "export_batches",
    "format_status",
    "image_info",
    "review_status",
    "write_batch_files",
    "ReviewConfig",
    "run_review",
    "run_stage",
]
