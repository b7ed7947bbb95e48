"""The settings of a toy world (saved as ``toyworld.json``), their checks, and the resume compatibility check."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from data_manifests import INTENDED_VIEWS, VIEW_SETS

from .family import check_family_size

INSTANCE_VIEWS: tuple[str, ...] = ("front_left", "rear_right", "left", "front")
DETECTION_CLASS_SETS: dict[str, dict[str, int]] = {
    "vehicle": {"sedan": 0, "suv": 0, "van": 0, "truck": 0, "bus": 0},
    "coco": {"sedan": 0, "suv": 0, "van": 0, "bus": 1, "truck": 2},  # names car, bus, truck
}
DETECTION_NAMES: dict[str, list[str]] = {"vehicle": ["vehicle"], "coco": ["car", "bus", "truck"]}


@dataclass(frozen=True)
class ToyworldSettings:
    """Everything that determines a toy world export (saved as ``toyworld.json``)."""

    identities: int = 12
    images_per_identity: int = 16
    size: int = 128
    seed: int = 0
    instance_views: tuple[str, ...] = INSTANCE_VIEWS
    occluder_probability: float = 0.1  # share of rendered images with 1-2 occluders in front of the vehicle
    view_classes: str = "toyworld"  # label set of the masks: "toyworld" (left/right) or "pven" (side)
    train_fraction: float = 0.5  # share of identities in the train split (the rest: query/gallery, test lists)
    queries_per_identity: int = 2  # VeRi/diffveri queries per test identity, each on its own camera
    detection_images: int = 0  # 0 = max(16, 4 * identities)
    detection_classes: str = "vehicle"  # "vehicle" (one class) or "coco" (car, bus, truck)
    jpeg_quality: int = 95
    family_size: int = 1  # 1 = the classic world; K >= 2 = the family world (families of K identities)
    cues_per_face: int = 1  # family world: individual cues on each face of a vehicle
    first_index: int = 0  # the world holds identity indices [first_index, first_index + identities)
    reid_crop: float | None = None  # VeRi/VehicleID images cut to the vehicle box + this margin (None: whole render)

    def validate(self) -> None:
        check_family_size(self.family_size, self.cues_per_face)
        k = self.family_size
        if self.identities < 2:
            raise ValueError(
                f"--identities must be >= 2 (train and test need one identity each), got {self.identities}"
            )
        if k > 1 and (self.identities % k or self.identities < 2 * k):
            raise ValueError(
                f"--identities must be a multiple of --family-size {k} and hold at least two families (train and "
                f"test need one each), got {self.identities}; e.g. --identities {max(2, -(-self.identities // k)) * k}"
            )
        if self.first_index < 0 or self.first_index % k:
            raise ValueError(
                f"--first-index must be >= 0 and a multiple of --family-size {k} (worlds hold whole families), "
                f"got {self.first_index}"
            )
        if self.reid_crop is not None and not 0.0 <= self.reid_crop <= 1.0:
            raise ValueError(f"--reid-crop is a margin in [0, 1] (fraction of the vehicle box), got {self.reid_crop}")
        if self.images_per_identity < 2:
            raise ValueError(f"--images-per-identity must be >= 2, got {self.images_per_identity}")
        if self.size < 32:
            raise ValueError(f"--size must be >= 32 pixels, got {self.size}")
        if not 0.0 < self.train_fraction < 1.0:
            raise ValueError(f"train_fraction must be in (0, 1), got {self.train_fraction}")
        if self.view_classes not in VIEW_SETS:
            raise ValueError(f"view_classes must be one of {sorted(VIEW_SETS)}, got {self.view_classes!r}")
        if self.detection_classes not in DETECTION_CLASS_SETS:
            raise ValueError(f"detection_classes must be one of {sorted(DETECTION_CLASS_SETS)}")
        bad = [v for v in self.instance_views if v not in INTENDED_VIEWS]
        if bad:
            raise ValueError(f"instance views {bad} are not in INTENDED_VIEWS {INTENDED_VIEWS}")


# Settings that change the pixels or masks of an image without changing its id, or which identities a world holds:
# a world must keep them.
RENDER_SETTINGS: tuple[str, ...] = (
    "seed", "size", "occluder_probability", "view_classes", "instance_views", "family_size", "first_index",
    "cues_per_face",
)  # fmt: skip


def check_compatible(out: Path, settings: ToyworldSettings) -> None:
    """Refuse to resume into a world built with other render settings (images would silently mix)."""
    info_path = out / "toyworld.json"
    if not info_path.is_file():
        return
    try:
        old = json.loads(info_path.read_text())["settings"]
    except (json.JSONDecodeError, KeyError) as exc:
        raise ValueError(f"{info_path}: unreadable ({exc}); delete it or choose another --out") from exc
    new = asdict(settings)
    default = asdict(ToyworldSettings())  # worlds written before a setting existed used its default
    old = {k: old.get(k, default[k]) for k in RENDER_SETTINGS}
    differ = {k: (old[k], new[k]) for k in RENDER_SETTINGS if json.dumps(old[k]) != json.dumps(new[k])}
    if differ:
        shown = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in differ.items())
        raise ValueError(
            f"{out} holds a toy world rendered with other settings ({shown}); resuming would mix images. "
            "Use another --out, or delete the folder to rebuild it"
        )
