"""The images page: start generation with picked models, or upload an image import, and
follow both as they run.

Thin: the generation and import services decide, check and write; the page lists what the
server offers (pipeline folders in the allowed roots, the procedural models).
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from annotate.access import MANAGERS, campaign_get_for_user
from annotate.models import ImageImport
from annotate.selectors import image_import_list
from annotate.services.image_imports.jobs import image_import_create
from annotate.uploads import declared_body_size
from frontend.image_forms import ImagesGenerateForm, ImagesImportForm
from frontend.panels import percent
from generation.backends.spec import procedural_sources
from generation.models import GenerationJob
from generation.selectors import generation_job_errors, generation_job_list, generation_job_progress
from generation.services.generators import generator_get_or_create
from generation.services.jobs import generation_job_start
from pickwise.errors import ApplicationError
from pickwise.model_folders import model_folder_choices

FILE_TOO_LARGE = "The file has {size} bytes; the limit is {limit}."
# Multipart boundaries and the small fields around the file.
MULTIPART_OVERHEAD = 64 * 1024
LIST_LIMIT = 5


def _sources() -> list[tuple[str, str]]:
    folders = [(str(path), path.name) for path in model_folder_choices()]
    drawn = [
        (source, _("%(source)s (drawn, no GPU)") % {"source": source})
        for source in procedural_sources()
    ]
    return folders + drawn


def _jobs_context(campaign) -> dict:
    generations = []
    for job in generation_job_list(campaign=campaign)[:LIST_LIMIT]:
        counts = generation_job_progress(job=job)
        generations.append(
            {
                "job": job,
                "names": ", ".join(g.name for g in job.generators.all()),
                "done": counts["finished"],
                "total": counts["total"],
                "percent": percent(counts["finished"], counts["total"]),
                "errors": generation_job_errors(job=job, limit=10) if counts["failed"] else [],
            }
        )
    imports = [
        {"job": job, "percent": percent(job.progress_done, job.progress_total)}
        for job in image_import_list(campaign=campaign)[:LIST_LIMIT]
    ]
    active = any(row["job"].status in GenerationJob.ACTIVE for row in generations) or any(
        row["job"].status in ImageImport.ACTIVE for row in imports
    )
    return {"campaign": campaign, "generations": generations, "imports": imports, "active": active}


def _page(request, campaign, *, generate=None, upload=None, status=200):
    sources = _sources()
    context = {
        **_jobs_context(campaign),
        "generate": generate or ImagesGenerateForm(sources=sources),
        "upload": upload or ImagesImportForm(),
        "has_folders": any(not value.startswith("procedural:") for value, _label in sources),
        "max_upload": settings.PICKWISE_MAX_UPLOAD_BYTES,
        "prompt_count": campaign.prompts.count(),
    }
    return render(request, "frontend/images.html", context, status=status)


def _campaign(request, campaign_id: int):
    return campaign_get_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGERS)


@login_required
@require_GET
def images(request, campaign_id: int):
    return _page(request, _campaign(request, campaign_id))


@login_required
@require_GET
def images_jobs(request, campaign_id: int):
    """The generation and import lists alone, polled by htmx while one of them runs."""
    campaign = _campaign(request, campaign_id)
    return render(request, "frontend/partials/image_jobs.html", _jobs_context(campaign))


@login_required
@require_POST
def images_generate(request, campaign_id: int):
    campaign = _campaign(request, campaign_id)
    form = ImagesGenerateForm(request.POST, sources=_sources())
    if not form.is_valid():
        return _page(request, campaign, generate=form, status=400)
    values = form.cleaned_data
    try:
        with transaction.atomic():
            generators = [
                generator_get_or_create(
                    source=source,
                    steps=values["steps"],
                    width=values["width"],
                    height=values["height"],
                    scheduler=values["scheduler"],
                    guidance=values["guidance"],
                )
                for source in values["sources"]
            ]
            job = generation_job_start(
                campaign=campaign,
                generators=generators,
                seeds_per_prompt=values["seeds_per_prompt"],
                created_by=request.user,
            )
    except ApplicationError as error:
        form.add_error(None, error.message)
        return _page(request, campaign, generate=form, status=error.status)
    messages.success(request, _("Generation job %(id)s is queued.") % {"id": job.pk})
    return redirect("frontend:campaign-images", campaign.pk)


@login_required
@require_POST
def images_import(request, campaign_id: int):
    campaign = _campaign(request, campaign_id)
    limit = settings.PICKWISE_MAX_UPLOAD_BYTES
    form = ImagesImportForm(request.POST, request.FILES)
    declared = declared_body_size(request.META)
    if declared > limit + MULTIPART_OVERHEAD:
        form = ImagesImportForm()
        form.add_error(None, FILE_TOO_LARGE.format(size=declared, limit=limit))
        return _page(request, campaign, upload=form, status=413)
    if not form.is_valid():
        return _page(request, campaign, upload=form, status=400)
    upload = form.cleaned_data["file"]
    if upload.size > limit:
        form.add_error("file", FILE_TOO_LARGE.format(size=upload.size, limit=limit))
        return _page(request, campaign, upload=form, status=413)
    try:
        job = image_import_create(
            campaign=campaign,
            upload=upload.file,
            file_name=upload.name or "",
            with_labels=form.cleaned_data["with_labels"],
            build=form.cleaned_data["build"],
            created_by=request.user,
        )
    except ApplicationError as error:
        form.add_error(None, error.message)
        return _page(request, campaign, upload=form, status=error.status)
    messages.success(
        request, _("Import %(id)s of %(name)s is queued.") % {"id": job.pk, "name": job.file_name}
    )
    return redirect("frontend:campaign-images", campaign.pk)
