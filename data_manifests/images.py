"""Opening images from user input and manifests with a pixel limit (decompression bombs).

A small PNG can declare 12000 x 12000 pixels and take most of a gigabyte to decode; PIL only warns below twice its
default limit. :func:`open_image` reads the size from the header and refuses an image over the limit before any
pixel is decoded. The limit is ``DIFFVERI_MAX_IMAGE_PIXELS`` (default 64 M pixels, e.g. 8000 x 8000).
:func:`apply_pixel_limit` (called by every entry point through ``data_manifests.runtime``) also makes PIL itself
raise, instead of warn, over the same limit, so images opened by other libraries are covered too.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ENV = "DIFFVERI_MAX_IMAGE_PIXELS"
DEFAULT_MAX_PIXELS = 64_000_000


class ImageTooLargeError(ValueError):
    """An image has more pixels than the configured limit; it was not decoded."""


def max_image_pixels() -> int:
    """The limit from ``DIFFVERI_MAX_IMAGE_PIXELS`` (default :data:`DEFAULT_MAX_PIXELS`)."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{ENV}={text!r} must be a positive number of pixels (e.g. 64000000)")
    return value


def check_size(size: tuple[int, int], path: str | os.PathLike, max_pixels: int | None = None) -> None:
    """Raise :class:`ImageTooLargeError` if ``size = (width, height)`` is over the limit."""
    limit = max_pixels or max_image_pixels()
    width, height = size
    if width * height > limit:
        raise ImageTooLargeError(
            f"{path}: image is {width}x{height} = {width * height / 1e6:.1f} M pixels, over the limit of "
            f"{limit / 1e6:.1f} M pixels; it was not decoded. Downscale it, or raise {ENV} if it is genuine"
        )


@contextlib.contextmanager
def open_image(path: str | os.PathLike, max_pixels: int | None = None) -> Iterator[Any]:
    """``PIL.Image.open`` that refuses images over the pixel limit before decoding them."""
    from PIL import Image

    limit = max_pixels or max_image_pixels()
    with warnings.catch_warnings():
        # PIL warns (or raises) by its own limit while reading the header; ours is checked right after.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(Path(path))
        except Image.DecompressionBombError as exc:  # over twice PIL's limit: PIL refuses before we see the size
            raise ImageTooLargeError(
                f"{path}: image is over the limit of {limit / 1e6:.1f} M pixels ({exc}); it was not decoded. "
                f"Downscale it, or raise {ENV} if it is genuine"
            ) from exc
    with image:
        check_size(image.size, path, limit)
        yield image


def apply_pixel_limit(max_pixels: int | None = None) -> int:
    """Make PIL raise (not warn) for any image over the limit in this process. Returns the limit."""
    from PIL import Image

    limit = max_pixels or max_image_pixels()
    Image.MAX_IMAGE_PIXELS = limit
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)
    return limit
