"""Running one batch of a job on a worker: claim items, generate, store, release or fail.

A batch is a list of item ids of one job and one generator, so the images come from one spec
and go through one pipeline call (chunked by the worker's max batch size). Everything here is
safe to run twice for the same items: claims are conditional updates, stored images are unique
per (prompt, generator, seed), and items already made are reused without touching the GPU.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from annotate.models import Image
from annotate.services.images import image_create
from generation.backends import SpecError
from generation.models import GenerationItem, GenerationJob, Generator
from generation.services.completion import (
    generation_job_finish_if_complete,
    prompt_finish_if_complete,
)
from pickwise.errors import ApplicationError
from pickwise.jobs import RELEASED, job_claim, jobs_lost

logger = logging.getLogger(__name__)

ERROR_GAVE_UP = "Gave up after {attempts} attempts: the worker stopped each time."
ERROR_TRANSIENT = "Retrying after a temporary error: {error}"
ERROR_SPEC = "The generator spec is unusable: {error}"
ERROR_ITEM = "Generation failed: {error}"
ERROR_REWARD = "Reward scoring is configured but failed: {error}"

Status = GenerationItem.Status


class TransientGenerationError(Exception):
    """Worth retrying later (a busy database, a full GPU, a network file system hiccup)."""


def is_transient(error: BaseException) -> bool:
    if isinstance(error, OperationalError | InterfaceError | TimeoutError | ConnectionError):
        return True
    # torch.cuda.OutOfMemoryError, named so this module need not import torch.
    return type(error).__name__ == "OutOfMemoryError"


@dataclass
class BatchResult:
    claimed: int = 0
    reused: int = 0
    generated: int = 0
    failed: int = 0
    comparisons: int = 0
    finished_job: bool = False
    prompts: set[int] = field(default_factory=set)


def items_claim(
    *, job: GenerationJob, generator: Generator, item_ids: Sequence[int], worker: str
) -> tuple[str, list[GenerationItem]]:
    """Claim the batch's items that are pending, or running but stale; returns (token, items).

    One conditional UPDATE per step: a second worker running the same batch claims nothing.
    Items that have already had their share of attempts are failed instead of claimed, so an
    item that kills its worker every time (out of memory) cannot loop forever.
    """
    lost = jobs_lost(timeout=settings.PICKWISE_GENERATION_HEARTBEAT_TIMEOUT)
    claimable = GenerationItem.objects.filter(
        job=job, generator=generator, pk__in=list(item_ids)
    ).filter(Q(status=Status.PENDING) | lost)
    max_attempts = settings.PICKWISE_GENERATION_MAX_ATTEMPTS
    claimable.filter(attempts__gte=max_attempts).update(
        status=Status.FAILED,
        error=ERROR_GAVE_UP.format(attempts=max_attempts),
        finished_at=timezone.now(),
        claim_token="",
    )
    token, _claimed = job_claim(
        claimable=claimable.filter(attempts__lt=max_attempts), worker=worker
    )
    items = list(
        GenerationItem.objects.filter(claim_token=token, status=Status.RUNNING)
        .select_related("prompt")
        .order_by("prompt_id", "index")
    )
    return token, items


def _release(token: str, error: str) -> None:
    GenerationItem.objects.filter(claim_token=token, status=Status.RUNNING).update(
        status=Status.PENDING, error=error, **RELEASED
    )


def _fail(queryset, error: str) -> int:
    return queryset.update(
        status=Status.FAILED, error=error[:5000], finished_at=timezone.now(), claim_token=""
    )


def _finish(item: GenerationItem, token: str, image: Image) -> bool:
    """Mark the item done if this run still holds it (a stale claim may have been taken)."""
    return bool(
        GenerationItem.objects.filter(pk=item.pk, claim_token=token, status=Status.RUNNING).update(
            status=Status.DONE, image=image, error="", finished_at=timezone.now()
        )
    )


def _store(*, item: GenerationItem, generator: Generator, data: bytes, params: dict, score):
    """The image for (prompt, generator, seed), created once even when two workers race."""
    try:
        image, _ = image_create(
            prompt=item.prompt,
            data=data,
            source=Image.Source.GENERATED,
            generator=generator,
            seed=item.seed,
            params=params,
            score=score,
        )
    except IntegrityError:
        image = Image.objects.get(prompt=item.prompt, generator=generator, seed=item.seed)
    return image


_scorers: dict[str, object] = {}


def _reward_scores(prompts: list[str], images: list) -> list[float | None]:
    """PickScore per image when PICKWISE_REWARD_MODEL_DIR is set; one scorer per process."""
    folder = settings.PICKWISE_REWARD_MODEL_DIR
    if not folder:
        return [None] * len(images)
    from generation.backends.reward import reward_scorer_from_settings

    scorer = _scorers.get(folder)
    if scorer is None:
        scorer = _scorers[folder] = reward_scorer_from_settings(model_dir=folder)
    return scorer.score(prompts, images)


def _generate(generator: Generator, items: list[GenerationItem]) -> list:
    from generation.backends import BackendOptions, backend_for

    spec = generator.to_spec()
    # backend_for imports diffusers only for a diffusers spec: the web never imports torch.
    return backend_for(spec)(
        spec,
        [(item.prompt.text, item.prompt.negative_prompt or None, item.seed) for item in items],
        options=BackendOptions.from_env(),
    )


def generation_batch_run(
    *,
    job_id: int,
    generator_id: int,
    item_ids: Sequence[int],
    worker: str = "",
) -> BatchResult:
    """Make the images of one batch and store them; then finish prompts and maybe the job.

    Raises TransientGenerationError (after giving the items back) when a retry may succeed;
    permanent errors are recorded on the items. Not atomic as a whole: each image is stored
    and its item marked done in its own transaction, so a kill loses at most the batch's
    unfinished images, which the next claim makes again.
    """
    result = BatchResult()
    job = GenerationJob.objects.select_related("campaign").filter(pk=job_id).first()
    generator = Generator.objects.filter(pk=generator_id).first()
    if job is None or generator is None or job.status not in GenerationJob.ACTIVE:
        return result  # a message for a job that was cancelled or deleted meanwhile
    token, items = items_claim(job=job, generator=generator, item_ids=item_ids, worker=worker)
    result.claimed = len(items)
    if items:
        GenerationJob.objects.filter(pk=job.pk, status=GenerationJob.Status.PENDING).update(
            status=GenerationJob.Status.RUNNING, started_at=timezone.now()
        )
    # Images made by an earlier attempt (or job) are reused without touching the GPU.
    existing = {
        (image.prompt_id, image.seed): image
        for image in Image.objects.filter(
            generator=generator,
            prompt_id__in={item.prompt_id for item in items},
            seed__in={item.seed for item in items},
        )
    }
    todo = []
    for item in items:
        image = existing.get((item.prompt_id, item.seed))
        if image is None:
            todo.append(item)
        elif _finish(item, token, image):
            result.reused += 1
    try:
        generated = _generate(generator, todo) if todo else []
        scores = _score(todo, generated)
        for item, made, score in zip(todo, generated, scores, strict=True):
            with transaction.atomic():
                image = _store(
                    item=item,
                    generator=generator,
                    data=made.png(),
                    params=made.metadata,
                    score=score,
                )
                if _finish(item, token, image):
                    result.generated += 1
    except SpecError as error:
        # The whole generator is unusable: fail what it still has to do in this job.
        message = ERROR_SPEC.format(error=error)
        result.failed = _fail(
            GenerationItem.objects.filter(claim_token=token, status=Status.RUNNING), message
        )
        result.failed += _fail(
            job.items.filter(generator=generator, status=Status.PENDING), message
        )
    except Exception as error:
        if is_transient(error):
            _release(token, ERROR_TRANSIENT.format(error=error))
            raise TransientGenerationError(str(error)) from error
        if not isinstance(error, ValueError | ApplicationError | DatabaseError | OSError):
            logger.exception("generation batch of job %s failed", job.pk)
        result.failed = _fail(
            GenerationItem.objects.filter(claim_token=token, status=Status.RUNNING),
            ERROR_ITEM.format(error=error),
        )
    result.prompts = {item.prompt_id for item in items}
    for prompt_id in sorted(result.prompts):
        result.comparisons += prompt_finish_if_complete(job=job, prompt_id=prompt_id)
    result.finished_job = generation_job_finish_if_complete(job_id=job.pk)
    return result


def _score(items: list[GenerationItem], generated: list) -> list[float | None]:
    try:
        return _reward_scores([item.prompt.text for item in items], [g.image for g in generated])
    except Exception as error:
        if is_transient(error):
            raise
        raise ApplicationError(ERROR_REWARD.format(error=error), code="reward_failed") from error


def generation_items_fail(*, job_id: int, item_ids: Sequence[int], error: str, worker: str) -> int:
    """Record a batch's final failure (retries spent) on its items that nobody else holds."""
    mine = Q(status=Status.PENDING) | Q(status=Status.RUNNING, worker=worker)
    items = GenerationItem.objects.filter(job_id=job_id, pk__in=list(item_ids))
    failed = _fail(items.filter(mine), error)
    job = GenerationJob.objects.select_related("campaign").filter(pk=job_id).first()
    if job is None:
        return failed
    for prompt_id in items.values_list("prompt_id", flat=True).distinct().order_by():
        prompt_finish_if_complete(job=job, prompt_id=prompt_id)
    generation_job_finish_if_complete(job_id=job_id)
    return failed
