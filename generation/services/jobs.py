"""Starting generation jobs: a campaign's prompts x generators x seeds, as claimable items."""

import hashlib
from collections.abc import Iterable, Sequence
from itertools import zip_longest

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotate.models import Campaign
from annotate.services.campaigns import campaign_update
from generation.models import (
    MAX_JOB_SEED,
    MAX_SEEDS_PER_PROMPT,
    GenerationItem,
    GenerationJob,
    Generator,
)
from pickwise.enqueue import enqueue_many_on_commit
from pickwise.errors import ApplicationError

ERROR_NO_GENERATORS = "Name at least one generator."
ERROR_UNKNOWN_GENERATORS = "Unknown generators: {names}."
ERROR_UNUSABLE_GENERATOR = "Generator {name} is unusable: {reason}"
ERROR_BAD_SEEDS = f"seeds_per_prompt must be a whole number from 1 to {MAX_SEEDS_PER_PROMPT}."
ERROR_BAD_JOB_SEED = f"seed must be a whole number from 0 to {MAX_JOB_SEED}."
ERROR_BAD_GOLD = "gold must be a whole number from 0 upwards, or null for the default."
ERROR_NO_PROMPTS = "The campaign has no prompts to generate images for."
ERROR_CAMPAIGN_CLOSED = "The campaign is closed; reopen it before generating images."
ERROR_JOB_RUNNING = "Generation job {job_id} is still running for this campaign."
ERROR_JOB_FINISHED = "Generation job {job_id} has finished already."
CANCELLED = "Cancelled."

ITEM_INSERT_BATCH = 2000
MAX_SEED = 2**63 - 1


def item_seed(*, job_seed: int, prompt_id: int, index: int) -> int:
    """The index-th seed for a prompt: deterministic, spread over 63 bits.

    Every generator of a job gets the same seeds for a prompt, so a pair of images starts from
    the same noise and differs by the model, not by luck of the draw. A second job with the
    same seed finds the images made already (idempotent), and more seeds per prompt add to them.
    """
    digest = hashlib.sha256(f"pickwise:{job_seed}:{prompt_id}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & MAX_SEED


def generators_resolve(*, refs: Sequence[str | int | Generator]) -> list[Generator]:
    """Generators by row, name or id (names win when a name looks like a number), in order.

    Each one's spec is validated again: a folder may have gone since the row was saved.
    """
    if not refs:
        raise ApplicationError(ERROR_NO_GENERATORS, code="invalid")
    found: list[Generator] = []
    missing: list[str] = []
    for ref in refs:
        if isinstance(ref, Generator):
            generator = ref
        else:
            text = str(ref).strip()
            generator = Generator.objects.filter(name=text).first()
            if generator is None and text.isdigit():
                generator = Generator.objects.filter(pk=int(text)).first()
        if generator is None:
            missing.append(str(ref))
        elif generator.pk not in {g.pk for g in found}:
            found.append(generator)
    if missing:
        raise ApplicationError(
            ERROR_UNKNOWN_GENERATORS.format(names=", ".join(missing[:20])),
            code="unknown_generator",
        )
    for generator in found:
        _check_usable(generator)
    return found


def _check_usable(generator: Generator) -> None:
    from django.core.exceptions import ValidationError

    try:
        generator.clean()
    except ValidationError as error:
        reason = "; ".join(
            f"{field}: {message}"
            for field, messages in error.message_dict.items()
            for message in messages
        )
        raise ApplicationError(
            ERROR_UNUSABLE_GENERATOR.format(name=generator.name, reason=reason),
            code="invalid_generator",
            extra={"generator": generator.name},
        ) from None


def _check_numbers(*, seeds_per_prompt: int, seed: int, gold_count: int | None) -> None:
    def whole(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not whole(seeds_per_prompt) or not 1 <= seeds_per_prompt <= MAX_SEEDS_PER_PROMPT:
        raise ApplicationError(ERROR_BAD_SEEDS, code="invalid")
    if not whole(seed) or not 0 <= seed <= MAX_JOB_SEED:
        raise ApplicationError(ERROR_BAD_JOB_SEED, code="invalid")
    if gold_count is not None and (not whole(gold_count) or gold_count < 0):
        raise ApplicationError(ERROR_BAD_GOLD, code="invalid")


def _refuse_if_running(campaign: Campaign) -> None:
    running = (
        GenerationJob.objects.filter(campaign=campaign, status__in=GenerationJob.ACTIVE)
        .values_list("pk", flat=True)
        .first()
    )
    if running is not None:
        raise ApplicationError(
            ERROR_JOB_RUNNING.format(job_id=running),
            code="job_running",
            status=409,
            extra={"job": running},
        )


def _items(
    job: GenerationJob, prompt_ids: Iterable[int], generators: list[Generator]
) -> Iterable[GenerationItem]:
    for prompt_id in prompt_ids:
        for index in range(job.seeds_per_prompt):
            seed = item_seed(job_seed=job.seed, prompt_id=prompt_id, index=index)
            for generator in generators:
                yield GenerationItem(
                    job=job, prompt_id=prompt_id, generator=generator, index=index, seed=seed
                )


@transaction.atomic
def generation_job_create(
    *,
    campaign: Campaign,
    generators: Sequence[str | int | Generator],
    seeds_per_prompt: int,
    seed: int = 0,
    gold_count: int | None = None,
    created_by: AbstractBaseUser | None = None,
) -> GenerationJob:
    """Create a job and its items; nothing is enqueued (see generation_job_start).

    Locks the campaign row so two starts for one campaign queue up; the partial unique
    constraint on active jobs is the last word if they do not.
    """
    _check_numbers(seeds_per_prompt=seeds_per_prompt, seed=seed, gold_count=gold_count)
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.status == Campaign.Status.CLOSED:
        raise ApplicationError(ERROR_CAMPAIGN_CLOSED, code="campaign_closed", status=409)
    _refuse_if_running(campaign)
    resolved = generators_resolve(refs=generators)
    prompt_ids = list(campaign.prompts.order_by("id").values_list("id", flat=True))
    if not prompt_ids:
        raise ApplicationError(ERROR_NO_PROMPTS, code="no_prompts")
    job = GenerationJob(
        campaign=campaign,
        seeds_per_prompt=seeds_per_prompt,
        seed=seed,
        gold_count=gold_count,
        created_by=created_by,
    )
    job.full_clean()
    try:
        with transaction.atomic():
            job.save()
    except IntegrityError:
        # Lost a race the campaign lock did not cover: the constraint names the winner.
        _refuse_if_running(campaign)
        raise
    job.generators.set(resolved)
    GenerationItem.objects.bulk_create(
        _items(job, prompt_ids, resolved), batch_size=ITEM_INSERT_BATCH
    )
    if campaign.status == Campaign.Status.DRAFT:
        campaign_update(campaign=campaign, status=Campaign.Status.GENERATING)
    return job


def generation_job_start(
    *,
    campaign: Campaign,
    generators: Sequence[str | int | Generator],
    seeds_per_prompt: int,
    seed: int = 0,
    gold_count: int | None = None,
    created_by: AbstractBaseUser | None = None,
) -> GenerationJob:
    """Create a job and enqueue its batches on the generate queue once the rows are committed."""
    with transaction.atomic():
        job = generation_job_create(
            campaign=campaign,
            generators=generators,
            seeds_per_prompt=seeds_per_prompt,
            seed=seed,
            gold_count=gold_count,
            created_by=created_by,
        )
        job_id = job.pk
        # Workers must find the items when the first message arrives: enqueue after commit.
        transaction.on_commit(lambda: generation_job_enqueue(job_id=job_id))
    return job


def generation_batches(
    *, job: GenerationJob, item_ids: Iterable[int] | None = None
) -> list[tuple[int, list[int]]]:
    """The job's pending items as (generator id, item ids) batches, in the order to run them.

    A batch shares one spec (one pipeline call). Items go prompt by prompt, so a prompt gets
    all its images early and its comparisons can be built while the rest is generating; the
    generators take turns, which the worker's pipeline cache absorbs when it holds them all
    (their weights), else each generator's batches run back to back to avoid reloading.
    """
    from generation.backends import BackendOptions

    pending = job.items.filter(status=GenerationItem.Status.PENDING)
    if item_ids is not None:
        pending = pending.filter(pk__in=list(item_ids))
    rows = pending.order_by("generator_id", "prompt_id", "index").values_list("generator_id", "pk")
    size = settings.PICKWISE_GENERATION_BATCH_SIZE
    per_generator: dict[int, list[list[int]]] = {}
    for generator_id, pk in rows.iterator(chunk_size=5000):
        batches = per_generator.setdefault(generator_id, [[]])
        if len(batches[-1]) >= size:
            batches.append([])
        batches[-1].append(pk)
    generators = {g.pk: g for g in Generator.objects.filter(pk__in=per_generator)}
    weights = {generators[pk].to_spec().loading_key() for pk in per_generator}
    try:
        cache_size = BackendOptions.from_env().cache_size
    except ValueError:
        cache_size = BackendOptions().cache_size
    if len(weights) <= cache_size:
        ordered = [
            (generator_id, batch)
            for round_ in zip_longest(
                *[[(pk, batch) for batch in batches] for pk, batches in per_generator.items()]
            )
            for generator_id, batch in filter(None, round_)
        ]
    else:
        ordered = [(pk, batch) for pk, batches in per_generator.items() for batch in batches]
    return ordered


def generation_job_enqueue(*, job_id: int, item_ids: Iterable[int] | None = None) -> int:
    """Send a generate task per batch of the job's pending items; returns how many were sent.

    Sending a batch twice is harmless: items are claimed with a conditional update, so the
    second message finds nothing to claim.
    """
    from generation.tasks import generation_batch_task

    job = GenerationJob.objects.filter(pk=job_id, status__in=GenerationJob.ACTIVE).first()
    if job is None:
        return 0
    batches = generation_batches(job=job, item_ids=item_ids)
    calls = [(job.pk, generator_id, batch) for generator_id, batch in batches]
    enqueue_many_on_commit(generation_batch_task, calls)
    return len(batches)


@transaction.atomic
def generation_job_cancel(*, job: GenerationJob) -> GenerationJob:
    """Stop a job: pending items fail as cancelled; running batches finish what they hold."""
    job = GenerationJob.objects.select_for_update().get(pk=job.pk)
    if job.status not in GenerationJob.ACTIVE:
        raise ApplicationError(
            ERROR_JOB_FINISHED.format(job_id=job.pk), code="job_finished", status=409
        )
    now = timezone.now()
    job.items.filter(status=GenerationItem.Status.PENDING).update(
        status=GenerationItem.Status.FAILED, error=CANCELLED, finished_at=now
    )
    job.status = GenerationJob.Status.CANCELLED
    job.finished_at = now
    job.save(update_fields=["status", "finished_at"])
    return job
