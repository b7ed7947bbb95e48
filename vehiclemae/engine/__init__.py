"""Training engine: the epoch loop, schedule, checkpoints and the run wiring."""

from .config import DataConfig, MethodConfig, ModelConfig, OptimConfig, PretrainConfig
from .pretrain import NonFiniteLossError, run_pretraining, train_one_epoch

__all__ = [
    "DataConfig",
    "MethodConfig",
    "ModelConfig",
    "NonFiniteLossError",
    "OptimConfig",
    "PretrainConfig",
    "run_pretraining",
    "train_one_epoch",
]
