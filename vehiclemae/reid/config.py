"""The typed config of a Re-ID fine-tuning run (``configs/vehiclemae/finetune_*.yaml``; keys in docs/benchmarks.md).

:func:`vehiclemae.reid.runner.run` is the one place it becomes explicit arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModelConfig:
    init: str = "scratch"  # scratch | export (vehiclemae export file) | mae (timm/MAE state dict) | clip
    init_path: str | None = None
    model_name: str = "vehiclemae_vit_toy_patch8"  # ignored for init=export (the file names its architecture)
    img_size: int = 64
    drop_path_rate: float = 0.1


@dataclass
class DataConfig:
    dataset: str = "veri776"  # veri776 | vehicleid
    root: str = "data/toy/VeRi"
    vehicleid_test_size: int | None = None  # default: the smallest test list offered
    p: int = 8  # identities per batch
    k: int = 4  # images per identity
    eval_batch_size: int = 64
    num_workers: int = 0
    # Training identities held out to choose checkpoint-best.pt: a fraction in (0, 1), a count, or 0 (= last epoch).
    val_identities: float | int = 0.2
    # Probability of a horizontal flip of a training image; 0 turns it off, for data whose left and right sides carry
    # different evidence. The toy world's sides do (independent cues), yet turning it off gained nothing on validation
    # (docs/benchmarks.md), so the toy configs keep 0.5.
    hflip: float = 0.5


@dataclass
class OptimConfig:
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 3.5e-4
    weight_decay: float = 0.05
    layer_decay: float = 1.0  # < 1 enables layer-wise lr decay
    epochs: int = 10
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01
    max_iters_per_epoch: int | None = None
    label_smoothing: float = 0.1
    triplet_margin: float | None = 0.3  # null = soft margin
    id_weight: float = 1.0
    triplet_weight: float = 1.0


@dataclass
class EvalConfig:
    every: int = 1  # evaluate on the validation identities every N epochs (and after the last)
    metric: str = "euclidean"  # euclidean | cosine
    rerank: bool = False
    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3
    num_trials: int = 10  # VehicleID protocol trials
    max_rank: int = 50
    log_examples: int = 4  # queries in the retrieval picture sent to the trackers at each validation (0: none)


@dataclass
class UnsupervisedConfig:
    k1: int = 30
    k2: int = 6
    eps: float = 0.6
    min_samples: int = 4
    temperature: float = 0.05
    momentum: float = 0.2


@dataclass
class FinetuneConfig:
    mode: str = "supervised"  # supervised | unsupervised
    seed: int = 0
    output_dir: str = "runs/finetune-toy"
    device: str = "cpu"
    threads: int | None = None  # torch threads (None: torch's default)
    log_with: str = "tensorboard"  # trackers: tensorboard | wandb | mlflow, comma-separated, or none (offline-safe)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    unsupervised: UnsupervisedConfig = field(default_factory=UnsupervisedConfig)

    def validate(self) -> None:
        if self.mode not in ("supervised", "unsupervised"):
            raise ValueError(f"mode must be 'supervised' or 'unsupervised', got {self.mode!r}")
        if self.data.dataset not in ("veri776", "vehicleid"):
            raise ValueError(f"data.dataset must be 'veri776' or 'vehicleid', got {self.data.dataset!r}")
        if self.eval.metric not in ("euclidean", "cosine"):
            raise ValueError(f"eval.metric must be 'euclidean' or 'cosine', got {self.eval.metric!r}")
        if not 0.0 <= self.data.hflip <= 1.0:
            raise ValueError(f"data.hflip is a probability in [0, 1], got {self.data.hflip!r}")
        from vehiclemae.engine.tracking import parse_log_with

        parse_log_with(self.log_with)  # unknown or missing trackers fail before any work
