"""Models: timm-registered encoders (importing this package registers them), the MAE decoder and the VMIM pair."""

from .mae import MaskedAutoencoder, encode_visible, patchify, unpatchify
from .vit import ARCHS, create_encoder, load_encoder, read_metadata, save_encoder
from .vmim import MODES, VehicleMAE, build_vehiclemae

__all__ = [
    "ARCHS",
    "MODES",
    "MaskedAutoencoder",
    "VehicleMAE",
    "build_vehiclemae",
    "create_encoder",
    "encode_visible",
    "load_encoder",
    "patchify",
    "read_metadata",
    "save_encoder",
    "unpatchify",
]
