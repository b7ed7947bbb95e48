"""Label Studio brush masks: its RLE (thi.ng ``rle-pack``) to a boolean mask, and back.

A ``brushlabels`` result stores ``value.rle``: a list of bytes holding a bit stream that run-length encodes the
mask as an ``H x W x 4`` RGBA byte image (the alpha channel is the mask). The stream is: 32 bits value count,
5 bits word size - 1, four 4-bit run-length field sizes - 1, then chunks: 1 bit repeat flag, 2 bits choosing a
field size, that many bits of length - 1, then one word (a repeat) or length words (literals).
"""

from __future__ import annotations

import numpy as np


class _Bits:
    def __init__(self, data: list[int] | bytes) -> None:
        bits = np.unpackbits(np.asarray(bytearray(data), dtype=np.uint8))
        self.text = (bits + ord("0")).tobytes().decode("ascii")  # "0101..." : int(text[i:j], 2) reads a field
        self.i = 0

    def read(self, n: int) -> int:
        if self.i + n > len(self.text):
            raise ValueError("Label Studio RLE ends early (truncated or not an RLE)")
        self.i += n
        return int(self.text[self.i - n : self.i], 2) if n else 0


def decode(rle: list[int] | bytes, height: int, width: int) -> np.ndarray:
    """The ``(height, width)`` boolean mask of a Label Studio brush RLE (alpha > 0)."""
    stream = _Bits(rle)
    num = stream.read(32)
    if num != height * width * 4:
        raise ValueError(f"Label Studio RLE holds {num} values, a {width}x{height} RGBA image has {height * width * 4}")
    word = stream.read(5) + 1
    sizes = [stream.read(4) + 1 for _ in range(4)]
    out = np.zeros(num, dtype=np.uint32)
    i = 0
    while i < num:
        repeat = stream.read(1)
        j = min(num, i + 1 + stream.read(sizes[stream.read(2)]))
        if repeat:
            out[i:j] = stream.read(word)
        else:
            for k in range(i, j):
                out[k] = stream.read(word)
        i = j
    return out.reshape(height, width, 4)[..., 3] > 0


def encode(mask: np.ndarray) -> list[int]:
    """A Label Studio brush RLE of ``mask`` (RGBA, white where the mask is), with repeat chunks only.

    Label Studio's own encoder also writes literal chunks; :func:`decode` reads both.
    """
    m = np.asarray(mask, dtype=bool)
    values = np.repeat(np.where(m.reshape(-1), 255, 0).astype(np.int64), 4)
    sizes = (3, 4, 8, 16)
    bits = [format(len(values), "032b"), format(8 - 1, "05b"), *(format(s - 1, "04b") for s in sizes)]
    starts = np.flatnonzero(np.diff(values, prepend=-1))
    ends = np.append(starts[1:], len(values))
    for start, end in zip(starts, ends):
        while start < end:
            n = min(end - start, 1 << sizes[3])
            field = next(k for k, s in enumerate(sizes) if n - 1 < (1 << s))
            bits += ["1", format(field, "02b"), format(n - 1, f"0{sizes[field]}b"), format(int(values[start]), "08b")]
            start += n
    stream = "".join(bits)
    stream += "0" * (-len(stream) % 8)
    return [int(stream[k : k + 8], 2) for k in range(0, len(stream), 8)]
