"""The procedural toy world: parametric 3-D vehicles rendered with exact per-pixel view labels.

It is the embedded default data of the project (no real vehicle dataset or pretrained model is reachable here):
``make demo``, the tests and a CPU-scale Re-ID benchmark run on it. See ``docs/toyworld.md``.

    >>> from pipeline.toyworld import sample_identity, render
    >>> ident = sample_identity(seed=0, index=7)            # deterministic
    >>> r = render(ident, azimuth=30, elevation=15, size=128, seed=1)
    >>> r.image.shape, r.labels.shape                       # (128, 128, 3) uint8, (128, 128) int64
"""

from .camera import VIEW_ANGLES, nearest_view, view_to_camera
from .identity import CLASSES, ToyIdentity, identity_from_attributes, identity_name, sample_identity
from .renderer import KEY_COLOR, RenderResult, collapse_labels, render

__all__ = [
    "CLASSES",
    "KEY_COLOR",
    "VIEW_ANGLES",
    "RenderResult",
    "ToyIdentity",
    "collapse_labels",
    "identity_from_attributes",
    "identity_name",
    "nearest_view",
    "render",
    "sample_identity",
    "view_to_camera",
]
