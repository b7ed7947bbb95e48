"""Tiny, randomly initialised Stable Diffusion pipelines built offline (the ``toy`` profile's base model).

The pipeline has the real diffusers/transformers classes (``UNet2DConditionModel``, ``AutoencoderKL``,
``CLIPTextModel``, ``CLIPTokenizer``, DDPM/DDIM schedulers) at toy sizes, so every code path that runs on
Stable Diffusion runs here too. The CLIP tokenizer is a small byte-level BPE written by :func:`write_bpe_tokenizer`
(vocab.json + merges.txt learned from a tiny corpus): no model hub is ever asked for anything.

Saved with ``save_pretrained`` and loadable with ``StableDiffusionPipeline.from_pretrained(path,
local_files_only=True)``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MODEL_INDEX = "model_index.json"

# Words the tokenizer should know as whole tokens: prompt-bank vocabulary and vehicle classes.
_DEFAULT_CORPUS = (
    "a photo of car sedan suv van hatchback mpv pickup bus truck estate vehicle the front rear left right side "
    "view three quarter aerial top from above behind seen facing photograph high quality detailed sharp focus "
    "blurry cropped low deformed distorted cartoon drawing painting text watermark multiple cars people street "
    "road parked red blue green white black gray silver yellow orange brown golden"
)


@dataclass(frozen=True)
class TinySDSpec:
    """Sizes of the tiny pipeline. Defaults follow diffusers' own dummy test components (about 8 MB on disk).

    ``sample_size`` is the latent side; with two VAE blocks the VAE downsamples by 2, so images are
    ``2 * sample_size`` pixels (64 by default).
    """

    unet_channels: tuple[int, ...] = (32, 64)
    layers_per_block: int = 2
    sample_size: int = 32
    cross_attention_dim: int = 32
    vae_channels: tuple[int, ...] = (32, 64)
    latent_channels: int = 4
    text_hidden: int = 32
    text_layers: int = 5
    text_heads: int = 4
    text_intermediate: int = 37
    max_length: int = 77
    bpe_merges: int = 400


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode map (the alphabet of byte-level BPE)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def learn_bpe(corpus: str, n_merges: int) -> list[tuple[str, str]]:
    """Learn up to ``n_merges`` BPE merges over the words of ``corpus`` (CLIP style: ``</w>`` ends a word)."""
    byte_map = bytes_to_unicode()
    words = Counter(re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]+", corpus.lower()))
    splits = {}
    for word, count in words.items():
        chars = [byte_map[b] for b in word.encode()]
        chars[-1] = chars[-1] + "</w>"
        splits[tuple(chars)] = count
    merges: list[tuple[str, str]] = []
    for _ in range(n_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, count in splits.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += count
        if not pairs:
            break
        # Ties broken by the pair itself so the merge list is deterministic.
        best = max(pairs.items(), key=lambda item: (item[1], item[0]))[0]
        merges.append(best)
        new_splits = {}
        for symbols, count in splits.items():
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            new_splits[tuple(out)] = count
        splits = new_splits
    return merges


def write_bpe_tokenizer(directory: Path, corpus: str = _DEFAULT_CORPUS, n_merges: int = 400) -> int:
    """Write ``vocab.json`` and ``merges.txt`` of a small CLIP BPE tokenizer into ``directory``.

    The vocabulary holds every byte symbol (with and without ``</w>``), so any text tokenizes (rare DreamBooth
    tokens fall apart into pieces, as they do in CLIP), plus the learned merges and the two special tokens.
    Returns the vocabulary size.
    """
    symbols = list(bytes_to_unicode().values())
    vocab_list = symbols + [s + "</w>" for s in symbols]
    merges = learn_bpe(corpus, n_merges)
    for a, b in merges:
        vocab_list.append(a + b)
    vocab_list += [BOS, EOS]
    vocab = {}
    for token in vocab_list:
        vocab.setdefault(token, len(vocab))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return len(vocab)


def build_tiny_pipeline(spec: TinySDSpec = TinySDSpec(), seed: int = 0, tokenizer_dir: Path | None = None):
    """Build a tiny random ``StableDiffusionPipeline`` with a DDIM sampler (training uses DDPM on its config).

    ``tokenizer_dir`` must hold ``vocab.json`` / ``merges.txt`` (see :func:`write_bpe_tokenizer`).
    """
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    if tokenizer_dir is None:
        raise ValueError("build_tiny_pipeline needs tokenizer_dir (write one with write_bpe_tokenizer)")
    vocab = json.loads((tokenizer_dir / "vocab.json").read_text())
    merge_lines = (tokenizer_dir / "merges.txt").read_text().splitlines()
    merges = [tuple(line.split()) for line in merge_lines if line and not line.startswith("#version")]
    # transformers 5 builds CLIPTokenizer from the vocabulary and merges themselves (not file names).
    tokenizer = CLIPTokenizer(
        vocab=vocab,
        merges=merges,
        model_max_length=spec.max_length,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=EOS,
        unk_token=EOS,
    )
    torch.manual_seed(seed)
    n_blocks = len(spec.unet_channels)
    unet = UNet2DConditionModel(
        block_out_channels=spec.unet_channels,
        layers_per_block=spec.layers_per_block,
        sample_size=spec.sample_size,
        in_channels=spec.latent_channels,
        out_channels=spec.latent_channels,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n_blocks - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n_blocks - 1) + ("UpBlock2D",),
        cross_attention_dim=spec.cross_attention_dim,
        norm_num_groups=min(32, spec.unet_channels[0]),
    )
    vae = AutoencoderKL(
        block_out_channels=spec.vae_channels,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * len(spec.vae_channels),
        up_block_types=("UpDecoderBlock2D",) * len(spec.vae_channels),
        latent_channels=spec.latent_channels,
        norm_num_groups=min(32, spec.vae_channels[0]),
        sample_size=spec.sample_size * 2 ** (len(spec.vae_channels) - 1),
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=vocab[BOS],
            eos_token_id=vocab[EOS],
            pad_token_id=vocab[EOS],
            hidden_size=spec.text_hidden,
            intermediate_size=spec.text_intermediate,
            num_attention_heads=spec.text_heads,
            num_hidden_layers=spec.text_layers,
            max_position_embeddings=spec.max_length,
            vocab_size=len(vocab),
            layer_norm_eps=1e-5,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_tiny_pipeline(out_dir: Path, spec: TinySDSpec = TinySDSpec(), seed: int = 0, overwrite: bool = False) -> Path:
    """Build the tiny pipeline and save it as a ``StableDiffusionPipeline`` folder at ``out_dir``.

    The folder appears atomically (built in a temporary sibling, then renamed), so a crash never leaves a
    half-saved model that later stages would load. An existing folder is kept unless ``overwrite``, and so is one
    that another process (a parallel shard of the same stage) put in place while this one was building: it may be
    loading from it already, and it holds the same model (same spec and seed).
    """
    out_dir = Path(out_dir)
    if (out_dir / MODEL_INDEX).is_file() and not overwrite:
        logger.info("tiny pipeline already at %s; keeping it", out_dir)
        return out_dir
    tmp = out_dir.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{out_dir.name}")
    try:
        tok_dir = tmp / "tokenizer"
        write_bpe_tokenizer(tok_dir, n_merges=spec.bpe_merges)
        pipe = build_tiny_pipeline(spec, seed=seed, tokenizer_dir=tok_dir)
        pipe.save_pretrained(tmp, safe_serialization=True)
        (tmp / "tiny_sd_spec.json").write_text(json.dumps({**spec.__dict__, "seed": seed}, indent=1))
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        if out_dir.exists() and (overwrite or not (out_dir / MODEL_INDEX).is_file()):
            shutil.rmtree(out_dir)  # replaced on purpose, or a folder that is not a pipeline
        try:
            os.rename(tmp, out_dir)  # refuses a non-empty out_dir: never pulls a model from under a reader
        except OSError:
            if not (out_dir / MODEL_INDEX).is_file():
                raise
            logger.info("tiny pipeline put at %s by another process meanwhile; keeping it", out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("saved tiny Stable Diffusion pipeline to %s", out_dir)
    return out_dir
