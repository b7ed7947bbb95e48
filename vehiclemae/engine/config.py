"""Typed configuration of a pre-training run (defaults = the toy profile; see ``configs/vehiclemae/*.yaml``).

Every key is documented in ``docs/vehiclemae.md``. Only :func:`vehiclemae.engine.pretrain.run_pretraining` reads
this object; it turns it into explicit keyword arguments for the data, model and loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DataConfig:
    root: str = "data/toy"  # data root holding manifests/<table>
    table: str = "diffveri"
    splits: tuple[str, ...] = ("train",)  # rows used for pre-training (status == ok only)
    view_classes: str = "pven"  # "pven" | "toyworld" (left/right kept distinct; flips swap them)
    scale: tuple[float, float] = (0.5, 1.0)  # random resized crop: area range
    ratio: tuple[float, float] = (0.75, 1.3333)  # random resized crop: aspect range
    hflip: float = 0.5
    num_workers: int = 0
    limit: int | None = None  # use only the first N rows (by image_id), for smoke runs
    vehicle_crop: float | None = None  # cut images to the vehicle box + this margin first (Re-ID data are crops)


@dataclass
class ModelConfig:
    encoder: str = "vehiclemae_vit_toy_patch8"  # a name from vehiclemae.models.ARCHS
    img_size: int = 64
    decoder_embed_dim: int = 96
    decoder_depth: int = 2
    decoder_num_heads: int = 3
    norm_pix_loss: bool = True
    drop_path_rate: float = 0.0
    init: str = "scratch"  # "scratch" | "mae" (an exported encoder / timm state_dict) | "clip" (OpenAI or HF CLIP)
    init_path: str | None = None  # local file for init "mae" / "clip"


@dataclass
class MethodConfig:
    mode: str = "vehiclemae"  # "mae" | "vmim" | "vehiclemae" | baselines "cmae" | "clmae" (engine/modes.py)
    mask_mode: str = "asymmetric"  # "asymmetric" | "symmetric" (vmim/vehiclemae); mode mae always uses one mask
    mask_ratio: float = 0.75  # of the RGB branch (and of the view branch unless mask_ratio_view is set)
    mask_ratio_view: float | None = None  # view branch's own ratio (asymmetric masks; the visible sets stay disjoint)
    fg_floor: float = 0.1  # weight of background-only patches in the reconstruction losses (1.0 = plain MAE)
    view_loss_weight: float = 1.0
    ppmd_weight: float = 1.0  # cross-branch distillation weight once ramped (docs/vehiclemae.md, "PPMD settings")
    ppmd_same_weight: float = 0.0  # optional same-branch term (student -> its own past)
    ppmd_ramp_epochs: int = 1  # weight ramps linearly from epoch 1 to epoch ramp_epochs
    ppmd_center: bool = True  # subtract each image's mean token before the cosine
    ppmd_target: str = "complementary"  # "complementary" (other branch's visible patches) | "same_patches" (ablation)
    ppmd_predictor: bool = True  # complementary: transformer (off: decoder tokens); same_patches: MLP (off: none)
    ppmd_predictor_depth: int = 1  # transformer blocks of the complementary predictor
    export_branch: str = "rgb"  # encoder written by `vehiclemae export` by default
    # Mode cmae (Contrastive MAE, Huang et al. 2023); setting a cmae_* key in another mode is an error.
    cmae_momentum: float = 0.996  # EMA momentum of the target encoder at the start (cosine to cmae_momentum_end)
    cmae_momentum_end: float = 1.0  # momentum at the end of training (the reference configs: 0.996, i.e. constant)
    cmae_temperature: float = 0.07  # InfoNCE temperature
    cmae_contrast_weight: float = 1.0  # weight of the contrastive loss (reconstruction weight 1)
    cmae_shift: float = 0.14  # largest target-view shift, fraction of model.img_size (paper: 31 px at 224)
    cmae_color: bool = True  # colour jitter / grayscale / blur on the target view
    cmae_feature_depth: int = 2  # feature decoder blocks (width and heads of the pixel decoder)
    cmae_proj_dim: int = 256  # projector / predictor output width
    # Mode clmae (Curriculum-Learned MAE, Madan et al. 2024); setting a clmae_* key in another mode is an error.
    clmae_depth: int = 5  # masking module transformer blocks (width = encoder width)
    clmae_heads: int = 4  # masking module attention heads
    clmae_lambda_start: float = 1.0  # curriculum factor of the first epoch (+1 cooperative: easy masks)
    clmae_lambda_end: float = -1.0  # of the last epoch (-1 adversarial: hard masks)
    clmae_gauss_weight: float = 1.0  # pushes mask scores towards 0 or 1
    clmae_kl_weight: float = 0.1  # holds the mean score at the visible share 1 - mask_ratio
    clmae_diversity_weight: float = 2.0  # keeps the masks of different images apart


@dataclass
class OptimConfig:
    batch_size: int = 32  # per process, per step
    accum_steps: int = 1  # effective batch = batch_size * accum_steps * processes
    blr: float = 1.5e-4  # lr = blr * effective batch / 256
    min_lr: float = 0.0
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_epochs: float = 1.0
    clip_grad: float | None = 3.0  # max gradient norm; null disables


@dataclass
class MonitorConfig:
    probe_size: int = 32  # training images probed after every epoch for encoder collapse (0 disables)
    min_effective_rank: float = 2.0  # warn below this effective rank of the pooled probe features
    min_std_ratio: float = 0.1  # warn when token_std falls below this share of its first-epoch value


@dataclass
class PretrainConfig:
    profile: str = "toy"
    seed: int = 0
    output_dir: str = "runs/vehiclemae-toy"
    epochs: int = 4
    cpu: bool = True  # force the CPU (toy); false uses the accelerator's device (GPU)
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16" (fp16 uses a gradient scaler; GPUs only)
    log_every: int = 10  # iterations between JSON-lines / tracker entries
    log_with: str = "tensorboard"  # trackers: tensorboard | wandb | mlflow, comma-separated, or none (offline-safe)
    log_images_every: int = 1  # epochs between reconstruction images sent to the trackers (0: none)
    checkpoint_every: int = 1  # also keep checkpoint-<epoch>.pt every N epochs (checkpoint-last.pt always)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
