"""Generators picked on a page: a source and sampling settings, made into a Generator row.

A page offers sources (pipeline folders from the allowed roots, procedural models) and a few
settings; the row with exactly those settings is reused, so the same pick twice is one model
in the exports and the leaderboard, and a new combination gets its own readable name.
"""

from __future__ import annotations

from pathlib import PurePath

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from generation.backends.spec import PROCEDURAL_PREFIX
from generation.models import Generator
from pickwise.errors import ApplicationError

ERROR_GENERATOR_SETTINGS = "{source}: {reason}"
ERROR_NAME_RACE = "Another request named a model at the same moment; start again."
MAX_NAME_TRIES = 1000


def _base_name(source: str) -> str:
    if source.startswith(PROCEDURAL_PREFIX):
        return source.removeprefix(PROCEDURAL_PREFIX)
    return PurePath(source).name or "model"


def _free_name(base: str) -> str:
    name = base
    for n in range(2, MAX_NAME_TRIES):
        if not Generator.objects.filter(name=name).exists():
            return name
        name = f"{base}-{n}"
    raise ApplicationError(f"No free generator name for {base}.", code="invalid")


@transaction.atomic
def generator_get_or_create(
    *,
    source: str,
    steps: int,
    width: int,
    height: int,
    scheduler: str = "",
    guidance: float = 7.5,
) -> Generator:
    """The generator with exactly these settings and no extras, made when there is none.

    Validated like any generator (model_folder_error for folders outside the roots, sizes,
    scheduler names); a refusal is an ApplicationError naming the source.
    """
    settings = {
        "source": source,
        "steps": steps,
        "width": width,
        "height": height,
        "scheduler": scheduler,
        "guidance": guidance,
    }
    if (existing := _matching(settings)) is not None:
        return existing
    generator = Generator(name=_free_name(_base_name(source)), **settings)
    try:
        generator.full_clean()
    except ValidationError as error:
        reason = "; ".join(
            message for messages in error.message_dict.values() for message in messages
        )
        raise ApplicationError(
            ERROR_GENERATOR_SETTINGS.format(source=_base_name(source), reason=reason),
            code="invalid_generator",
        ) from None
    try:
        with transaction.atomic():  # a savepoint: a lost race leaves the caller's work intact
            generator.save()
    except IntegrityError:
        # Another request took the free name between the check and the insert.
        if (existing := _matching(settings)) is not None:
            return existing
        raise ApplicationError(ERROR_NAME_RACE, code="conflict", status=409) from None
    return generator


def _matching(settings: dict) -> Generator | None:
    """A plain generator (no LoRA, extras or other options) with exactly these settings."""
    return (
        Generator.objects.filter(
            **settings,
            lora_path="",
            negative_prompt="",
            pipeline_class="",
            dtype="auto",
            extra={},
            scheduler_options={},
        )
        .order_by("id")
        .first()
    )
