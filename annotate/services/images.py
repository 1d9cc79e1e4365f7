"""Storing images: content-addressed files through Django's storage API, one row each."""

from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from annotate.models import Image, Prompt, image_upload_path
from annotate.uploads import CheckedImage, check_image_bytes


def image_file_store(*, checked: CheckedImage) -> str:
    """Write the bytes under their hash unless present; return the storage name."""
    probe = Image(sha256=checked.sha256)
    name = image_upload_path(probe, f"x.{checked.extension}")
    if not default_storage.exists(name):
        saved = default_storage.save(name, ContentFile(checked.data))
        # A concurrent writer may have won the name; storage then picks another. Same bytes.
        return saved
    return name


@transaction.atomic
def image_create(
    *,
    prompt: Prompt,
    data: bytes,
    source: str = Image.Source.IMPORTED,
    model_name: str = "",
    generator: Any = None,
    seed: int | None = None,
    params: dict | None = None,
    derived_from: Image | None = None,
    score: float | None = None,
) -> tuple[Image, bool]:
    """Store an image for a prompt; idempotent for imports (same bytes) and generation (seed).

    Returns (image, created).
    """
    checked = check_image_bytes(data)
    if generator is not None:
        existing = Image.objects.filter(prompt=prompt, generator=generator, seed=seed).first()
        if existing:
            return existing, False
    elif source == Image.Source.IMPORTED:
        existing = Image.objects.filter(prompt=prompt, sha256=checked.sha256, source=source).first()
        if existing:
            return existing, False
    image = Image(
        prompt=prompt,
        sha256=checked.sha256,
        width=checked.width,
        height=checked.height,
        model_name=model_name or (generator.name if generator is not None else ""),
        generator=generator,
        seed=seed,
        params=params or {},
        source=source,
        derived_from=derived_from,
        score=score,
    )
    image.file.name = image_file_store(checked=checked)
    image.full_clean(exclude=["file"])
    image.save()
    return image, True
