"""Checks on untrusted image bytes: a real image, an allowed format, within size limits."""

import hashlib
import io
import warnings
from dataclasses import dataclass

from django.conf import settings
from PIL import Image as PILImage

from pickwise.errors import ApplicationError

ALLOWED_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
NOT_AN_IMAGE = "Not a readable image."
FORMAT_NOT_ALLOWED = "Image format {fmt} is not allowed; use PNG, JPEG or WebP."
TOO_MANY_BYTES = "Image is {size} bytes; the limit is {limit}."
TOO_MANY_PIXELS = "Image has {pixels} pixels; the limit is {limit}."


def declared_body_size(meta) -> int:
    """The request's Content-Length, 0 when absent or malformed: read before the body, so an
    oversized upload is refused before it is spooled to disk."""
    try:
        return max(0, int(meta.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    sha256: str
    width: int
    height: int
    extension: str


def check_image_bytes(data: bytes) -> CheckedImage:
    """Validate untrusted bytes as an image without decoding more than the limits allow."""
    limit = settings.PICKWISE_MAX_IMAGE_BYTES
    if len(data) > limit:
        raise ApplicationError(TOO_MANY_BYTES.format(size=len(data), limit=limit), code="too_large")
    max_pixels = settings.PICKWISE_MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            # Pillow warns between 1x and 2x its limit and raises above; we want both to refuse.
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data)) as probe:
                fmt = probe.format
                width, height = probe.size
                if width * height > max_pixels:
                    raise ApplicationError(
                        TOO_MANY_PIXELS.format(pixels=width * height, limit=max_pixels),
                        code="too_large",
                    )
                probe.verify()
            # verify() leaves the image unusable; decode a fresh copy fully to catch truncation.
            with PILImage.open(io.BytesIO(data)) as full:
                full.load()
    except ApplicationError:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
        raise ApplicationError(
            TOO_MANY_PIXELS.format(pixels="too many", limit=max_pixels), code="too_large"
        ) from None
    except Exception:  # Pillow raises many types for corrupt input
        raise ApplicationError(NOT_AN_IMAGE, code="invalid_image") from None
    if fmt not in ALLOWED_FORMATS:
        raise ApplicationError(FORMAT_NOT_ALLOWED.format(fmt=fmt), code="invalid_image")
    return CheckedImage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        width=width,
        height=height,
        extension=ALLOWED_FORMATS[fmt],
    )
