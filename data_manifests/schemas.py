"""Versioned pyarrow schemas of the manifest tables (schema v1).

Every table is a folder ``<root>/manifests/<table>/`` of Parquet part files. Each table has a key (one or more
columns) that is unique across the table; writers upsert by it so that re-running a stage never duplicates rows.
Every column is documented in ``data_manifests/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from .enums import (
    ALL_VIEW_CLASSES,
    INTENDED_VIEWS,
    Decision,
    ImageSource,
    Reason,
    Source,
    Split,
    Status,
    Triage,
    values,
)

SCHEMA_VERSION = 1
META_VERSION = b"data_manifests.schema_version"
META_TABLE = b"data_manifests.table"

# A COCO run-length encoded mask: {size: [h, w], counts: str}, as pycocotools writes it (counts decoded to str).
RLE_TYPE = pa.struct([pa.field("size", pa.list_(pa.int32())), pa.field("counts", pa.string())])
BBOX_TYPE = pa.list_(pa.float32(), 4)  # x1, y1, x2, y2 in pixels of the image the row refers to


def _status_fields() -> list[pa.Field]:
    return [
        pa.field("status", pa.string(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("message", pa.string()),
    ]


@dataclass(frozen=True)
class ForeignKey:
    """``columns`` of this table must exist as the key of ``table`` (when both tables are present)."""

    columns: tuple[str, ...]
    table: str


@dataclass(frozen=True)
class TableSpec:
    """Everything the reader, writer and validator know about one table."""

    name: str
    schema: pa.Schema
    key: tuple[str, ...]
    enums: dict[str, frozenset[str]] = field(default_factory=dict)
    list_enums: dict[str, frozenset[str]] = field(default_factory=dict)  # enum checked on every list element
    foreign_keys: tuple[ForeignKey, ...] = ()
    path_columns: tuple[str, ...] = ()  # relative paths (or lists of them) that must exist under the data root
    # (path column, sha256 column): the files' bytes must hash to the recorded value (rows without one are skipped)
    file_hashes: tuple[tuple[str, str], ...] = ()

    def schema_with_metadata(self) -> pa.Schema:
        return self.schema.with_metadata({META_VERSION: str(SCHEMA_VERSION).encode(), META_TABLE: self.name.encode()})


STATUS = values(Status)
REASONS = values(Reason)
_common_enums = {"status": STATUS, "reason": REASONS}

SUBJECTS = TableSpec(
    name="subjects",
    schema=pa.schema(
        [
            pa.field("identity_id", pa.string(), nullable=False),
            pa.field("class_name", pa.string(), nullable=False),
            pa.field("token", pa.string()),
            pa.field("instance_images", pa.list_(pa.string()), nullable=False),
            pa.field("instance_sha256", pa.list_(pa.string())),  # sha256 of each instance image (null: not recorded)
            pa.field("source", pa.string(), nullable=False),
            pa.field("attributes", pa.string()),  # JSON object: colour, marks, source ids ...
            *_status_fields(),
        ]
    ),
    key=("identity_id",),
    enums={**_common_enums, "source": values(Source)},
    path_columns=("instance_images",),
    file_hashes=(("instance_images", "instance_sha256"),),
)

DREAMBOOTH = TableSpec(
    name="dreambooth",
    schema=pa.schema(
        [
            pa.field("identity_id", pa.string(), nullable=False),
            pa.field("base_model", pa.string()),
            pa.field("lora_path", pa.string()),
            pa.field("lora_sha256", pa.string()),
            pa.field("steps", pa.int32()),
            pa.field("final_loss", pa.float32()),
            pa.field("seconds", pa.float32()),
            pa.field("config", pa.string()),  # JSON of the training settings used
            *_status_fields(),
        ]
    ),
    key=("identity_id",),
    enums=dict(_common_enums),
    foreign_keys=(ForeignKey(("identity_id",), "subjects"),),
    path_columns=("lora_path",),
)

GENERATIONS = TableSpec(
    name="generations",
    schema=pa.schema(
        [
            pa.field("image_id", pa.string(), nullable=False),
            pa.field("identity_id", pa.string(), nullable=False),
            pa.field("intended_view", pa.string(), nullable=False),
            pa.field("prompt", pa.string()),
            pa.field("negative_prompt", pa.string()),
            pa.field("seed", pa.int64()),
            pa.field("steps", pa.int32()),
            pa.field("guidance", pa.float32()),
            pa.field("scheduler", pa.string()),
            pa.field("width", pa.int32()),
            pa.field("height", pa.int32()),
            pa.field("path", pa.string()),
            pa.field("sha256", pa.string()),
            pa.field("model_ref", pa.string()),  # backend + base model hash, e.g. "diffusion:sd15@<sha>"
            pa.field("lora_sha256", pa.string()),
            *_status_fields(),
        ]
    ),
    key=("image_id",),
    enums={**_common_enums, "intended_view": frozenset(INTENDED_VIEWS)},
    foreign_keys=(ForeignKey(("identity_id",), "subjects"),),
    path_columns=("path",),
)

DETECTIONS = TableSpec(
    name="detections",
    schema=pa.schema(
        [
            pa.field("image_id", pa.string(), nullable=False),
            pa.field("n_vehicles", pa.int32()),
            pa.field("bbox", BBOX_TYPE),
            pa.field("conf", pa.float32()),
            pa.field("cls", pa.int32()),
            pa.field("crop_path", pa.string()),
            pa.field("detector_ref", pa.string()),
            *_status_fields(),
            # automatic consistency checks before review (pipeline/review/checks.py); null = not checked
            pa.field("identity_score", pa.float32()),  # cosine similarity to the identity's subject photos
            pa.field("view_score", pa.float32()),  # share of vehicle pixels in views the prompted view shows
            pa.field("segment_view", pa.string()),  # the segmenter's dominant view class
            pa.field("checks_ref", pa.string()),  # encoder and segmenter that produced the scores
        ]
    ),
    key=("image_id",),
    enums={**_common_enums, "segment_view": ALL_VIEW_CLASSES},
    foreign_keys=(ForeignKey(("image_id",), "generations"),),
    path_columns=("crop_path",),
)

REVIEWS = TableSpec(
    name="reviews",
    schema=pa.schema(
        [
            pa.field("image_id", pa.string(), nullable=False),
            pa.field("batch_id", pa.string(), nullable=False),
            pa.field("decision", pa.string(), nullable=False),
            pa.field("view_label", pa.string()),
            pa.field("identity_ok", pa.bool_()),
            pa.field("reviewer", pa.string()),
            pa.field("reviewed_at", pa.timestamp("us", tz="UTC")),
            pa.field("notes", pa.string()),
            pa.field("source_sha256", pa.string()),  # sha256 of the image when the batch was exported
            pa.field("history", pa.string()),  # JSON list of superseded decisions of this (image, batch)
            *_status_fields(),
            pa.field("triage", pa.string()),  # what the automatic checks concluded (null: no checks ran)
        ]
    ),
    key=("image_id", "batch_id"),
    enums={
        **_common_enums,
        "decision": values(Decision),
        "view_label": frozenset(INTENDED_VIEWS),
        "triage": values(Triage),
    },
    foreign_keys=(ForeignKey(("image_id",), "generations"),),
)

_SEGMENT_FIELDS = [
    pa.field("image_id", pa.string(), nullable=False),
    pa.field("bbox", BBOX_TYPE),  # the prompt box (image pixels)
    pa.field("vehicle_rle", RLE_TYPE),
    pa.field("view_classes", pa.list_(pa.string())),  # names aligned with view_rles and view_fractions
    pa.field("view_rles", pa.list_(RLE_TYPE)),
    pa.field("view_fractions", pa.list_(pa.float32())),  # share of vehicle pixels per view class
    pa.field("dominant_view", pa.string()),
    pa.field("segmenter_ref", pa.string()),  # "groundtruth:toyworld" or "sam:<sha256 of checkpoint>"
    *_status_fields(),
]

SEGMENTS = TableSpec(
    name="segments",
    schema=pa.schema(_SEGMENT_FIELDS),
    key=("image_id",),
    enums={**_common_enums, "dominant_view": ALL_VIEW_CLASSES},
    list_enums={"view_classes": ALL_VIEW_CLASSES},
)

# Exact masks kept beside the predicted ones (the toy world's renderer knows them), for evaluating the segmenter.
SEGMENTS_GT = TableSpec(
    name="segments_gt",
    schema=pa.schema(_SEGMENT_FIELDS),
    key=("image_id",),
    enums={**_common_enums, "dominant_view": ALL_VIEW_CLASSES},
    list_enums={"view_classes": ALL_VIEW_CLASSES},
)

DIFFVERI = TableSpec(
    name="diffveri",
    schema=pa.schema(
        [
            pa.field("image_id", pa.string(), nullable=False),
            pa.field("identity_id", pa.string(), nullable=False),
            pa.field("class_name", pa.string()),
            pa.field("split", pa.string(), nullable=False),
            pa.field("camera_id", pa.int32()),  # virtual camera (viewpoint bin) for Re-ID protocols
            pa.field("path", pa.string(), nullable=False),
            pa.field("width", pa.int32(), nullable=False),
            pa.field("height", pa.int32(), nullable=False),
            pa.field("view_label", pa.string()),  # intended or reviewed viewpoint
            pa.field("dominant_view", pa.string()),
            pa.field("vehicle_rle", RLE_TYPE),
            pa.field("view_classes", pa.list_(pa.string())),
            pa.field("view_rles", pa.list_(RLE_TYPE)),
            pa.field("provenance", pa.string()),  # JSON: model_ref, seed, prompt, detector_ref, segmenter_ref, review
            *_status_fields(),
            # Added after v1's first release (nullable, at the end; null in tables assembled before).
            pa.field("source", pa.string()),  # synthetic | real (a subject photo)
            pa.field("source_path", pa.string()),  # the full image a crop was cut from (null: path is not a crop)
            pa.field("crop_box", BBOX_TYPE),  # the crop in source_path's pixels (integers)
        ]
    ),
    key=("image_id",),
    enums={
        **_common_enums,
        "source": values(ImageSource),
        "split": values(Split),
        "dominant_view": ALL_VIEW_CLASSES,
        "view_label": frozenset(INTENDED_VIEWS),
    },
    list_enums={"view_classes": ALL_VIEW_CLASSES},
    path_columns=("path", "source_path"),
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (SUBJECTS, DREAMBOOTH, GENERATIONS, DETECTIONS, REVIEWS, SEGMENTS, SEGMENTS_GT, DIFFVERI)
}


def get_spec(table: str) -> TableSpec:
    """The spec of a table by name, with an error that lists the valid names."""
    try:
        return TABLES[table]
    except KeyError:
        raise KeyError(f"unknown manifest table {table!r}; valid tables: {', '.join(sorted(TABLES))}") from None
