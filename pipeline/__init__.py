"""DiffVERI dataset construction: one sub-package per stage, plain typed functions (no Prefect here)."""
