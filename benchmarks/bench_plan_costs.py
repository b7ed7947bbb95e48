"""FLOPs per unit of work of the paper profile's models, counted on their real architectures (no weights).

Every model is built on torch's ``meta`` device (shapes only: nothing is allocated or computed) and run once under
``torch.utils.flop_counter.FlopCounterMode``, which counts the matmuls, convolutions and attention of the forward
pass. The figures are what ``plan.flops`` in ``configs/pipeline/paper.yaml`` holds; ``diffveri plan`` turns them into
GPU-hours with the achieved throughput in ``plan.gpu`` (docs/scale.md explains the calibration).

    python benchmarks/bench_plan_costs.py

Ends with ``RESULT unet_forward=... vae_decode=... ...`` (FLOPs per unit, one forward pass unless stated).
"""

from __future__ import annotations

import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from data_manifests.runtime import apply_offline_env  # noqa: E402

apply_offline_env()


def count(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def stable_diffusion() -> dict[str, int]:
    """SD 1.5: UNet (64x64 latent, 77 text tokens, batch 1), VAE encode/decode at 512 px, LoRA parameter count."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(cross_attention_dim=768, attention_head_dim=8)  # the SD 1.x UNet
        vae = AutoencoderKL(
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=2,
            latent_channels=4,
        )
        latent, text, image = torch.randn(1, 4, 64, 64), torch.randn(1, 77, 768), torch.randn(1, 3, 512, 512)
        step = torch.tensor([10])
    out = {
        "unet_forward": count(lambda: unet(latent, step, encoder_hidden_states=text)),
        "vae_decode": count(lambda: vae.decode(latent)),
        "vae_encode": count(lambda: vae.encode(image)),
    }
    # LoRA on the attention projections (what pipeline/generate/dreambooth.py adapts), rank 32: r * (in + out) each.
    lora = sum(
        32 * (m.in_features + m.out_features)
        for name, m in unet.named_modules()
        if isinstance(m, torch.nn.Linear) and name.endswith(("to_q", "to_k", "to_v", "to_out.0"))
    )
    out["lora_rank32_params"] = lora
    return out


def yolo() -> int:
    """YOLO11x at 640 px (the paper profile's detector), one image."""
    from ultralytics.nn.tasks import DetectionModel

    model = (
        DetectionModel("yolo11x.yaml", verbose=False).to("meta").train()
    )  # raw head outputs: box decoding (negligible) needs values
    with torch.device("meta"):
        x = torch.randn(1, 3, 640, 640)
    return count(lambda: model(x))


def sam_vit_b() -> int:
    """SAM ViT-B: image encoder at 1024 px plus prompt encoder and mask decoder for one box."""
    from segment_anything import sam_model_registry

    sam = sam_model_registry["vit_b"]().to("meta").eval()
    with torch.device("meta"):
        x = torch.randn(1, 3, 1024, 1024)
        box = torch.randn(1, 4)

    def run() -> None:
        emb = sam.image_encoder(x)
        sparse, dense = sam.prompt_encoder(points=None, boxes=box, masks=None)
        sam.mask_decoder(emb, sam.prompt_encoder.get_dense_pe(), sparse, dense, multimask_output=True)

    return count(run)


def vit_tokens(width: int, depth: int, heads: int, tokens: int) -> int:
    """Transformer blocks (timm ``Block``) of a ViT at ``tokens`` tokens, one image."""
    from timm.models.vision_transformer import Block

    with torch.device("meta"):
        blocks = torch.nn.Sequential(*[Block(width, heads) for _ in range(depth)])
        x = torch.randn(1, tokens, width)
    return count(lambda: blocks(x))


def clip_vit_b16() -> int:
    """CLIP ViT-B/16 vision tower at 224 px (the consistency checks' image encoder): 197 tokens, 12 blocks."""
    return vit_tokens(768, 12, 12, 197) + 2 * 3 * 768 * 16 * 16 * 196  # blocks + patch embedding


def vehiclemae_image() -> int:
    """One VehicleMAE training image (forward + backward ~ 3x forward), ViT-B/16 at 224, mask ratio 0.75.

    Two students (encoder on 49 visible + 1 class token; decoder 8 x 512 on 197 tokens), backward included (x3), and
    the two previous-epoch teachers' forward passes (encoder on 50 tokens each).
    """
    encoder = vit_tokens(768, 12, 12, 50)
    decoder = vit_tokens(512, 8, 16, 197)
    return 2 * 3 * (encoder + decoder) + 2 * encoder


def main() -> None:
    start = time.monotonic()
    figures = dict(stable_diffusion())
    figures["detector"] = yolo()
    figures["segmenter"] = sam_vit_b()
    figures["consistency"] = clip_vit_b16()
    figures["pretrain_image"] = vehiclemae_image()
    for key, value in figures.items():
        print(f"{key:<22} {value:.4g}")
    print(f"({time.monotonic() - start:.1f} s)")
    print("RESULT " + " ".join(f"{k}={v:.4g}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
