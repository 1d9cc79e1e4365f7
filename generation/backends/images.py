"""A generated image with its provenance, and the PNG bytes and digest that get stored.

Only Pillow here (no torch), so the code that writes images through Django's storage can use
these helpers without importing the GPU stack.
"""

from __future__ import annotations

import hashlib
import io
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, PngImagePlugin


def encode_png(image: Image.Image, *, text: dict[str, str] | None = None) -> bytes:
    """PNG bytes of an image. Without ``text`` the bytes depend on the pixels only.

    That keeps the sha256 stable across runs and machines for identical pixels; pass ``text``
    to embed metadata as PNG tEXt chunks when the file must carry it.
    """
    info = None
    if text:
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_text(key, str(value))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info, optimize=False, compress_level=6)
    return buffer.getvalue()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class GeneratedImage:
    """One image from generate_batch and how it was made.

    ``metadata`` is JSON-serialisable: generator name, source, prompt, negative prompt, seed,
    steps, guidance, scheduler, dtype, width, height, device, batch size, seconds per image and
    the diffusers and torch versions.
    """

    image: Image.Image
    prompt: str
    negative_prompt: str
    seed: int
    metadata: dict[str, Any] = field(default_factory=dict)

    _png: Future | None = field(default=None, init=False, repr=False, compare=False)

    def encode_in(self, executor: Executor) -> None:
        """Start encoding the PNG in ``executor``; png() then returns that result."""
        self._png = executor.submit(encode_png, self.image)

    def png(self) -> bytes:
        if self._png is not None:
            return self._png.result()
        return encode_png(self.image)

    def png_and_sha256(self) -> tuple[bytes, str]:
        data = self.png()
        return data, sha256_hex(data)
