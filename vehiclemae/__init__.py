"""VehicleMAE: view-asymmetry masked image modeling pre-training for vehicle Re-ID, and its benchmarks.

Reads DiffVERI manifests through ``data_manifests``; never imports ``pipeline`` or ``flows``.
"""
