"""The ``segment:`` config section as typed dataclasses (built only in the CLI / ``run_stage`` adapters), and the
view SAM's architecture (:class:`ModelSpec`, saved in every checkpoint; here so that a profile loads without torch)."""

from __future__ import annotations

from dataclasses import dataclass, field

PAPER_KINDS = ("vit_b", "vit_l", "vit_h")
KINDS = ("toy", *PAPER_KINDS)


@dataclass
class ModelSpec:
    """The architecture of a view SAM. ``kind="toy"`` uses every field; the ViT-B/L/H kinds use SAM's own sizes.

    Saved inside every checkpoint, so a checkpoint rebuilds its model without the config that made it.
    """

    kind: str = "toy"  # toy | vit_b | vit_l | vit_h
    base_checkpoint: str | None = None  # paper kinds: the original SAM weights (sam_vit_b_01ec64.pth ...)
    img_size: int = 128  # toy: side of the (padded, square) encoder input
    patch_size: int = 8
    embed_dim: int = 64
    depth: int = 2
    num_heads: int = 4
    window_size: int = 0  # 0 = global attention in every block (cheap at 16x16 tokens)
    global_attn_indexes: tuple[int, ...] = ()
    prompt_dim: int = 64  # encoder output channels = prompt embedding = decoder transformer width
    decoder_depth: int = 2
    decoder_mlp_dim: int = 256
    decoder_heads: int = 4
    iou_head_hidden_dim: int = 64

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"segment.model.kind={self.kind!r} is not one of {KINDS}")
        if self.kind == "toy" and self.img_size % self.patch_size:
            raise ValueError(f"segment.model: img_size {self.img_size} must be a multiple of patch_size")
        self.global_attn_indexes = tuple(int(i) for i in self.global_attn_indexes)


@dataclass
class FinetuneConfig:
    """How ``diffveri segment finetune`` trains (see docs/segment.md for every value)."""

    table: str = "segments"  # annotated masks: segments (toy world / human) or segments_gt
    # segmenter_ref prefixes of the rows trained on: human annotations and exact renderer masks, never predictions
    refs: list[str] = field(default_factory=lambda: ["human:", "groundtruth:"])
    out_dir: str = "models/segment"  # run folder (relative to the data root unless absolute)
    train_image_encoder: bool = False
    train_prompt_encoder: bool = False
    steps: int = 2000
    max_minutes: float | None = None  # stop early (and save) when the wall-clock budget is used
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int = 50
    grad_clip: float = 1.0
    dice_weight: float = 1.0  # loss = CE/BCE + dice_weight * Dice, for the vehicle and the view tokens
    view_weight: float = 1.0  # weight of the view-token loss relative to the vehicle-token loss
    box_jitter: float = 0.1  # std of box-corner noise, as a fraction of the box width/height
    hflip: bool = True  # mirror images (left/right classes are swapped accordingly)
    scale_jitter: float = 0.0  # zoom by a factor in 1 ± scale_jitter (image, masks and box alike)
    translate: float = 0.0  # shift by up to ± translate of the image side
    color_jitter: float = 0.0  # brightness / contrast / saturation in 1 ± color_jitter (hue untouched)
    val_fraction: float = 0.15  # share of identities held out for validation
    eval_every: int = 200
    checkpoint_every: int = 200
    num_threads: int = 1  # torch threads; 1 is fastest on a busy 2-core machine
    seed: int = 0


@dataclass
class SegmentConfig:
    """The ``segment:`` section: model, view classes, inference and fine-tuning settings."""

    view_set: str = "pven"  # named class set (data_manifests.VIEW_SETS) ...
    view_classes: list[str] | None = None  # ... or an explicit list, background first
    checkpoint: str = "models/segment/sam_view.pt"  # fine-tuned model: finetune's output, inference's input
    model: ModelSpec = field(default_factory=ModelSpec)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    batch_size: int = 8  # images per encoder pass at inference
    device: str = "cpu"
    overwrite: bool = False  # re-segment images that already have an ok row
    flush_every: int = 64  # rows buffered before each upsert (resume granularity)
    num_threads: int = 1
