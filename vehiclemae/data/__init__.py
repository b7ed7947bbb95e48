"""Datasets, joint transforms and samplers over DiffVERI manifests."""

from .diffveri import DiffVERIDataset, resolve_view_classes
from .samplers import PKSampler

__all__ = ["DiffVERIDataset", "PKSampler", "resolve_view_classes"]
