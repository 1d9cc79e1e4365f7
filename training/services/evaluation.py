"""The evaluation loop: base model vs tuned model on the export's held-out prompts.

From a finished job, one call makes a pairwise campaign whose prompts are the export's
test_unique captions, two generators (the base pipeline, and the same pipeline with the job's
LoRA or its fine-tuned UNet), and a generation job that draws both at the same seed per
prompt; the generation app builds one base-vs-tuned comparison per prompt, and the assignment
engine randomises the sides. The job's page then reports the win-rate (selectors).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotate.models import Campaign, Membership
from annotate.services.campaigns import campaign_create, membership_set
from annotate.services.prompts import PromptRow, prompts_add
from generation.models import MAX_SEEDS_PER_PROMPT, Generator
from generation.services.jobs import generation_job_start
from pickwise.errors import ApplicationError
from training.evaluation_design import EvaluationDesign, evaluation_design
from training.export_files import held_out_captions
from training.models import TrainingJob

ERROR_NOT_DONE = "Training job {id} is {status}; evaluate a finished job."
ERROR_ALREADY = "Training job {id} has an evaluation campaign already: {slug}."
ERROR_NO_HELD_OUT = (
    "Export {id} has no held-out prompts (its test_unique split is empty); export with a test "
    "fraction above 0 to evaluate."
)
ERROR_NO_WEIGHTS = "The tuned weights of training job {id} are missing on the server."
ERROR_BAD_SAMPLING = "steps must be 1 to 1000 and guidance 0 to 50."
ERROR_BAD_DESIGN = (
    f"prompts must be 1 to 1000 (or all), seeds per prompt 1 to {MAX_SEEDS_PER_PROMPT} and "
    "overlap 1 to 100."
)
MAX_PROMPTS = 1000
TUNED_PIPELINE = "pipeline"
LORA_FILE = "pytorch_lora_weights.safetensors"


def _criterion(job: TrainingJob) -> dict:
    """The exported criterion's question (the judges answer the same one); ties allowed."""
    for criterion in job.export.campaign.criteria:
        if criterion["key"] == job.export.criterion:
            return {**criterion, "allow_tie": True}
    return {"key": job.export.criterion, "question": "Which image is better?", "allow_tie": True}


def tuned_pipeline_folder(*, job: TrainingJob) -> Path:
    """For a full fine-tune: a pipeline folder of links to the base's parts and the tuned UNet
    (the generation backend loads pipeline folders). Idempotent."""
    output = Path(job.output_dir)
    folder = output / TUNED_PIPELINE
    folder.mkdir(exist_ok=True)
    base = Path(job.pretrained)
    for part in base.iterdir():
        link = folder / part.name
        target = output / "unet" if part.name == "unet" else part.resolve()
        if not link.exists() and not link.is_symlink():
            os.symlink(target, link)
    return folder


def _generators(*, job: TrainingJob, steps: int, guidance: float) -> tuple[Generator, Generator]:
    output = Path(job.output_dir)
    resolution = job.options.get("resolution") or 512
    common = {
        "steps": steps,
        "guidance": guidance,
        "width": resolution,
        "height": resolution,
    }
    if job.mode == TrainingJob.Mode.LORA:
        if not (output / LORA_FILE).is_file():
            raise ApplicationError(ERROR_NO_WEIGHTS.format(id=job.pk), code="no_weights")
        tuned = {"source": job.pretrained, "lora_path": str(output)}
    else:
        if not (output / "unet" / "config.json").is_file():
            raise ApplicationError(ERROR_NO_WEIGHTS.format(id=job.pk), code="no_weights")
        tuned = {"source": str(tuned_pipeline_folder(job=job))}
    base = _generator(name=f"training-job-{job.pk}-base", source=job.pretrained, **common)
    tuned = _generator(name=f"training-job-{job.pk}-tuned", **tuned, **common)
    return base, tuned


def _generator(*, name: str, **fields) -> Generator:
    """The job's generator under its name, made or brought up to date (a job evaluated again
    after its campaign was deleted finds its generators)."""
    generator = Generator.objects.filter(name=name).first() or Generator(name=name)
    for field, value in {"lora_path": "", **fields}.items():
        setattr(generator, field, value)
    generator.full_clean()
    generator.save()
    return generator


def evaluation_default_judges(*, job: TrainingJob) -> list[AbstractBaseUser]:
    """The source campaign's annotators who are not blocked: people who know the task."""
    memberships = (
        Membership.objects.filter(campaign=job.export.campaign, role=Membership.Role.ANNOTATOR)
        .exclude(gate_state=Membership.Gate.BLOCKED)
        .select_related("user")
        .order_by("user__username")
    )
    return [m.user for m in memberships if m.user.is_active]


def evaluation_plan(
    *,
    job: TrainingJob,
    prompts: int | None,
    seeds_per_prompt: int,
    overlap: int,
    judges: int,
) -> EvaluationDesign:
    """The design these choices give for this job's export (its held-out prompts)."""
    available = len(held_out_captions(folder=job.export.folder)[:MAX_PROMPTS])
    return evaluation_design(
        available_prompts=available,
        prompts=prompts,
        seeds=seeds_per_prompt,
        overlap=overlap,
        judges=judges,
    )


def _check_design(*, prompts: int | None, seeds_per_prompt: int, overlap: int) -> None:
    if (
        (prompts is not None and not 1 <= prompts <= MAX_PROMPTS)
        or not 1 <= seeds_per_prompt <= MAX_SEEDS_PER_PROMPT
        or not 1 <= overlap <= 100
    ):
        raise ApplicationError(ERROR_BAD_DESIGN, code="invalid")


def _slug(job: TrainingJob) -> str:
    slug, n = f"eval-training-job-{job.pk}", 1
    while Campaign.objects.filter(slug=slug).exists():
        n += 1
        slug = f"eval-training-job-{job.pk}-{n}"
    return slug


@transaction.atomic
def evaluation_campaign_create(
    *,
    job: TrainingJob,
    by: AbstractBaseUser | None,
    steps: int = 25,
    guidance: float = 7.5,
    overlap: int = 3,
    seed: int = 0,
    prompts: int | None = None,
    seeds_per_prompt: int = 1,
    judges: Sequence[AbstractBaseUser] | None = None,
) -> Campaign:
    """Create the evaluation campaign and start generating its images (on commit).

    `prompts` held-out prompts (None: all, up to MAX_PROMPTS) at `seeds_per_prompt` seeds
    each give one base-vs-tuned comparison per prompt and seed. `judges` become its
    annotators (None: the source campaign's annotators who are not blocked), and overlap is
    capped at their number. `by` becomes the campaign's admin. Locks the job row so two
    requests make one campaign.
    """
    job = TrainingJob.objects.select_for_update().select_related("export__campaign").get(pk=job.pk)
    if job.status != TrainingJob.Status.DONE:
        raise ApplicationError(
            ERROR_NOT_DONE.format(id=job.pk, status=job.status), code="job_not_done", status=409
        )
    if job.evaluation_campaign_id is not None:
        raise ApplicationError(
            ERROR_ALREADY.format(id=job.pk, slug=job.evaluation_campaign.slug),
            code="already_evaluated",
            status=409,
        )
    if not 1 <= steps <= 1000 or not 0 <= guidance <= 50:
        raise ApplicationError(ERROR_BAD_SAMPLING, code="invalid")
    _check_design(prompts=prompts, seeds_per_prompt=seeds_per_prompt, overlap=overlap)
    captions = held_out_captions(folder=job.export.folder)[:MAX_PROMPTS]
    if not captions:
        raise ApplicationError(ERROR_NO_HELD_OUT.format(id=job.export_id), code="no_prompts")
    judges = list(evaluation_default_judges(job=job) if judges is None else judges)
    design = evaluation_design(
        available_prompts=len(captions),
        prompts=prompts,
        seeds=seeds_per_prompt,
        overlap=overlap,
        judges=len(judges),
    )
    captions = captions[: design.prompts]
    base, tuned = _generators(job=job, steps=steps, guidance=guidance)
    campaign = campaign_create(
        slug=_slug(job),
        title=f"Evaluation of training job {job.pk}: tuned vs base",
        created_by=by,
        kind=Campaign.Kind.PAIRWISE,
        criteria=[_criterion(job)],
        overlap=design.overlap,
        # One base-vs-tuned pair per seed, not every base image against every tuned one.
        pairs_per_prompt=seeds_per_prompt,
        gold_rate=0.0,
        repeat_rate=0.0,
        qualification_size=0,
        instructions=(
            "Each task shows two images made from the same prompt and seed by two versions of "
            "a model. Pick the better one, or tie when you cannot tell."
        ),
    )
    prompts_add(
        campaign=campaign,
        rows=[
            PromptRow(line=i + 1, text=text, meta={"source": "test_unique"})
            for i, text in enumerate(captions)
        ],
    )
    generation_job_start(
        campaign=campaign,
        generators=[base, tuned],
        seeds_per_prompt=seeds_per_prompt,
        seed=seed,
        gold_count=0,
        created_by=by,
    )
    for judge in judges:
        if judge != by:
            membership_set(campaign=campaign, user=judge, role=Membership.Role.ANNOTATOR)
    job.evaluation_campaign = campaign
    job.base_generator = base
    job.tuned_generator = tuned
    job.save(update_fields=["evaluation_campaign", "base_generator", "tuned_generator"])
    return campaign
