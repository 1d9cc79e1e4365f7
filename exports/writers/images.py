"""JPEG bytes for export rows: stored images re-encoded (RGB), each once per export.

The cache is bounded by bytes (least recently used out first), so memory stays flat however
many rows an export has; rows come in comparison order, so an image's rows come together.
"""

import io
from collections import OrderedDict

from django.core.files.storage import default_storage
from PIL import Image as PILImage


class JpegEncoder:
    def __init__(self, *, quality: int, cache_bytes: int, enabled: bool = True) -> None:
        self.quality = quality
        self.cache_bytes = cache_bytes
        self.enabled = enabled
        self.encoded = 0  # images encoded (cache misses), for the manifest and benchmarks
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cached_bytes = 0

    def jpeg(self, *, image_id: int, file: str) -> bytes:
        if not self.enabled:
            return b""
        data = self._cache.get(image_id)
        if data is not None:
            self._cache.move_to_end(image_id)
            return data
        data = self._encode(file)
        self.encoded += 1
        self._cache[image_id] = data
        self._cached_bytes += len(data)
        while self._cached_bytes > self.cache_bytes and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= len(dropped)
        return data

    def _encode(self, file: str) -> bytes:
        with default_storage.open(file, "rb") as handle, PILImage.open(handle) as image:
            rgb = image.convert("RGB")
            buffer = io.BytesIO()
            # No EXIF, no timestamps: the same image always encodes to the same bytes.
            rgb.save(buffer, format="JPEG", quality=self.quality, optimize=False)
            return buffer.getvalue()
