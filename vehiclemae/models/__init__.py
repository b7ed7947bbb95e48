"""Models: timm-registered encoders (importing this package registers them), the MAE decoder and the VMIM pair."""

from .vit import ARCHS, create_encoder, load_encoder, read_metadata, save_encoder

__all__ = ["ARCHS", "create_encoder", "load_encoder", "read_metadata", "save_encoder"]
