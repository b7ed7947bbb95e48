"""The contract between dataset construction (``pipeline``) and pre-training (``vehiclemae``).

Versioned pyarrow schemas for every manifest table, the one Parquet reader/writer (atomic writes, upsert by key),
validation with clear errors, and COCO RLE mask encoding. See ``data_manifests/README.md`` for every column.
"""

from . import queries, rle, seeds
from .enums import (
    COLLAPSE_TO_PVEN,
    INTENDED_VIEWS,
    VIEW_CLASSES_PVEN,
    VIEW_CLASSES_TOYWORLD,
    VIEW_SETS,
    Decision,
    Reason,
    Source,
    Split,
    Status,
)
from .ids import image_id, sha256_file
from .images import ImageTooLargeError, max_image_pixels, open_image
from .paths import ID_PATTERN, PathEscapeError, check_id, inside_root, is_valid_id
from .repair import apply_repair, inspect_table, plan_repair
from .schemas import SCHEMA_VERSION, TABLES, TableSpec, get_spec
from .stats import dataset_row, stats, status_counts
from .store import (
    ConflictError,
    ManifestError,
    SchemaVersionError,
    UpsertResult,
    atomic_dir,
    atomic_write_bytes,
    delete_rows,
    existing_keys,
    iter_batches,
    list_tables,
    read_rows,
    read_table,
    table_exists,
    table_version,
    to_arrow,
    upsert,
    write_table,
)
from .validate import Problem, summarize, validate

__all__ = [
    "COLLAPSE_TO_PVEN",
    "INTENDED_VIEWS",
    "VIEW_CLASSES_PVEN",
    "VIEW_CLASSES_TOYWORLD",
    "VIEW_SETS",
    "Decision",
    "Reason",
    "Source",
    "Split",
    "Status",
    "image_id",
    "sha256_file",
    "ImageTooLargeError",
    "max_image_pixels",
    "open_image",
    "ID_PATTERN",
    "PathEscapeError",
    "check_id",
    "inside_root",
    "is_valid_id",
    "apply_repair",
    "inspect_table",
    "plan_repair",
    "SCHEMA_VERSION",
    "TABLES",
    "TableSpec",
    "get_spec",
    "dataset_row",
    "stats",
    "status_counts",
    "ConflictError",
    "ManifestError",
    "SchemaVersionError",
    "UpsertResult",
    "atomic_dir",
    "atomic_write_bytes",
    "delete_rows",
    "existing_keys",
    "iter_batches",
    "list_tables",
    "read_rows",
    "read_table",
    "table_exists",
    "table_version",
    "to_arrow",
    "upsert",
    "write_table",
    "Problem",
    "summarize",
    "validate",
    "queries",
    "rle",
    "seeds",
]
