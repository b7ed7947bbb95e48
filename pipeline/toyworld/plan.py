"""Planning a toy world: each identity's images (id, view, camera, seed, path), cheap and without rendering."""

from __future__ import annotations

from dataclasses import dataclass

import data_manifests as dm
from data_manifests import INTENDED_VIEWS

from .camera import view_to_camera
from .identity import ToyIdentity, sample_identity
from .settings import ToyworldSettings

MODEL_REF = "toyworld:render"


def image_seed(seed: int, index: int, j: int) -> int:
    """The render seed of image ``j`` of identity ``index`` (uint32)."""
    return dm.seeds.derive_seed(seed, "toyworld.image", index, j)


@dataclass(frozen=True)
class PlannedImage:
    """An image to render: its id, view, camera and seed, and where it goes."""

    image_id: str
    identity_id: str
    j: int
    view: str
    azimuth: float
    elevation: float
    seed: int
    occluders: bool
    path: str


def plan_identity(settings: ToyworldSettings, index: int) -> tuple[ToyIdentity, list[PlannedImage]]:
    """The identity ``index`` and its ``images_per_identity`` planned images (cheap: no rendering).

    Views cycle through every ``INTENDED_VIEWS`` entry in a random order per cycle, so each identity is seen from
    all directions; cameras are jittered around each view (:func:`view_to_camera`). Image ``j`` depends only on
    ``(seed, index, j)``, so a larger ``images_per_identity`` extends a world without changing its images."""
    ident = sample_identity(settings.seed, index, settings.family_size, settings.cues_per_face)
    views: list[str] = []
    cycle = 0
    while len(views) < settings.images_per_identity:
        order = dm.seeds.rng(settings.seed, "toyworld.view_order", index, cycle).permutation(len(INTENDED_VIEWS))
        views.extend(INTENDED_VIEWS[int(i)] for i in order)
        cycle += 1
    plans = []
    for j, view in enumerate(views[: settings.images_per_identity]):
        rng = dm.seeds.rng(settings.seed, "toyworld.image_camera", index, j)
        azimuth, elevation = view_to_camera(view, rng)
        occluded = bool(rng.random() < settings.occluder_probability)
        seed = image_seed(settings.seed, index, j)
        iid = dm.image_id(ident.identity_id, view, seed, MODEL_REF)
        plans.append(
            PlannedImage(
                iid,
                ident.identity_id,
                j,
                view,
                azimuth,
                elevation,
                seed,
                occluded,
                f"renders/{ident.identity_id}/{iid}.png",
            )
        )
    if len({p.image_id for p in plans}) != len(plans):
        raise RuntimeError(f"{ident.identity_id}: two planned images share an image id; choose another --seed")
    return ident, plans
