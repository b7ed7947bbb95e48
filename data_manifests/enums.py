"""Enumerations shared by every manifest table, defined once.

Values are stored as plain strings in Parquet so that any tool (pandas, DuckDB, a spreadsheet) can read them;
the sets below are what :func:`data_manifests.validate` and the writer accept.
"""

from __future__ import annotations

from enum import Enum, StrEnum


class Status(StrEnum):
    """What happened to a row. Failed and rejected rows are kept, never dropped."""

    OK = "ok"
    REJECTED = "rejected"
    FAILED = "failed"
    PENDING = "pending"


class Reason(StrEnum):
    """Why a row is not ``ok``. Stages add codes here (and only here) with a comment saying who uses them."""

    # any stage
    MISSING_FILE = "missing_file"  # an input file named by the row does not exist
    UNREADABLE_IMAGE = "unreadable_image"  # the file exists but does not decode as an image
    IMAGE_TOO_LARGE = "image_too_large"  # more pixels than DIFFVERI_MAX_IMAGE_PIXELS; refused before decoding
    PATH_OUTSIDE_ROOT = "path_outside_root"  # a path in the row leaves the data root; the file was not opened
    EXCEPTION = "exception"  # unexpected error; `message` holds the exception text
    UPSTREAM_NOT_OK = "upstream_not_ok"  # the row's input row was rejected or failed
    # dreambooth
    NON_FINITE_LOSS = "non_finite_loss"
    NO_INSTANCE_IMAGES = "no_instance_images"
    # synthesize
    BUDGET_EXHAUSTED = "budget_exhausted"
    # filter (detections)
    NO_VEHICLE = "no_vehicle"
    MULTIPLE_VEHICLES = "multiple_vehicles"
    LOW_CONFIDENCE = "low_confidence"
    TOO_SMALL = "too_small"
    TRUNCATED = "truncated"
    BAD_ASPECT = "bad_aspect"
    # review
    AWAITING_REVIEW = "awaiting_review"
    REVIEWER_REJECTED = "reviewer_rejected"
    REVIEWER_UNSURE = "reviewer_unsure"
    IDENTITY_MISMATCH = "identity_mismatch"
    IDENTITY_INCONSISTENT = "identity_inconsistent"  # automatic check: too unlike the identity's subject photos
    VIEW_INCONSISTENT = "view_inconsistent"  # automatic check: the segmenter's views do not match the prompted view
    # segment
    NO_BOX = "no_box"
    EMPTY_MASK = "empty_mask"


class Decision(StrEnum):
    """An annotator's decision on one image in a review batch."""

    ACCEPT = "accept"
    REJECT = "reject"
    UNSURE = "unsure"
    PENDING = "pending"


class Triage(StrEnum):
    """What the automatic consistency checks concluded about an image before review (``reviews.triage``)."""

    ACCEPT = "accept"  # every score above its band
    REJECT = "reject"  # a score below its band (the row's reason says which check)
    UNCERTAIN = "uncertain"  # a score inside its band: a person decides


# The reviewer recorded for decisions made without a person (automatic acceptance, automatic rejects).
AUTO_REVIEWER = "auto-policy"


class Split(StrEnum):
    """Identity-disjoint splits of the final DiffVERI table."""

    TRAIN = "train"
    QUERY = "query"
    GALLERY = "gallery"


class Source(StrEnum):
    """Where a subject's instance photos come from."""

    TOYWORLD = "toyworld"
    FOLDER = "folder"
    VERI776 = "veri776"
    VEHICLEID = "vehicleid"


class ImageSource(StrEnum):
    """Where an image of the final ``diffveri`` table comes from (the paper's dataset is real-synthetic)."""

    SYNTHETIC = "synthetic"  # a generation that passed every stage
    REAL = "real"  # a subject photo (an identity's instance image)


# Viewpoints a generation is prompted for, and that a reviewer may assign. Three-quarter views name the two
# faces they show. "top" is an aerial view.
INTENDED_VIEWS: tuple[str, ...] = (
    "front",
    "rear",
    "left",
    "right",
    "front_left",
    "front_right",
    "rear_left",
    "rear_right",
    "top",
)

# Per-pixel view classes. PVEN's convention is the default; the toy world renders left and right separately and
# collapses them to "side" on request. Index 0 is always the background.
VIEW_CLASSES_PVEN: tuple[str, ...] = ("background", "front", "rear", "side", "top")
VIEW_CLASSES_TOYWORLD: tuple[str, ...] = ("background", "front", "rear", "left", "right", "top")
VIEW_SETS: dict[str, tuple[str, ...]] = {"pven": VIEW_CLASSES_PVEN, "toyworld": VIEW_CLASSES_TOYWORLD}
ALL_VIEW_CLASSES: frozenset[str] = frozenset(VIEW_CLASSES_PVEN) | frozenset(VIEW_CLASSES_TOYWORLD)
COLLAPSE_TO_PVEN: dict[str, str] = {"left": "side", "right": "side"}


def values(enum: type[Enum]) -> frozenset[str]:
    """The string values of an enumeration."""
    return frozenset(member.value for member in enum)
