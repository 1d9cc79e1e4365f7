"""Training pages for researchers: start a job on an export, follow it, cancel, evaluate.

Thin like the other pages: fetch-and-authorise, then the same services and selectors as the
training API. The metric charts fetch new steps from GET /api/training-jobs/{id}/.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotate.models import Campaign
from annotate.services.members import users_find
from exports.access import export_get_for_user
from frontend.forms import EvaluationForm, EvaluationSizeForm, TrainingStartForm
from pickwise.errors import ApplicationError
from pickwise.model_folders import model_folder_choices
from training.access import training_job_get_for_user
from training.models import TrainingJob
from training.selectors import (
    training_job_evaluation,
    training_job_metric_series,
    training_job_progress,
)
from training.services.evaluation import (
    evaluation_campaign_create,
    evaluation_default_judges,
    evaluation_plan,
)
from training.services.jobs import training_job_cancel, training_job_start


def _job_url(job: TrainingJob) -> str:
    return reverse("frontend:training-job", args=[job.pk])


def _status_context(job: TrainingJob) -> dict:
    return {
        "job": job,
        "active": job.status in TrainingJob.ACTIVE,
        "progress": training_job_progress(job=job),
    }


@login_required
@require_http_methods(["GET", "POST"])
def training_start(request, export_id: int):
    export = export_get_for_user(user=request.user, export_id=export_id)
    folders = model_folder_choices()
    data = request.POST if request.method == "POST" else None  # an empty POST is still bound
    form = TrainingStartForm(data, model_folders=folders)
    if request.method == "POST" and form.is_valid():
        values = form.cleaned_data
        try:
            job = training_job_start(
                export=export,
                pretrained=values["pretrained"],
                method=values["method"],
                mode=values["mode"],
                options=form.options(),
                name=values["name"],
                created_by=request.user,
            )
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, _("Training job %(id)s is queued.") % {"id": job.pk})
            return redirect(_job_url(job))
    context = {"export": export, "campaign": export.campaign, "form": form, "folders": folders}
    return render(
        request, "frontend/training_start.html", context, status=400 if form.errors else 200
    )


@login_required
@require_http_methods(["GET"])
def training_job_detail(request, job_id: int):
    job = training_job_get_for_user(user=request.user, job_id=job_id)
    context = {
        **_status_context(job),
        **_evaluation_context(job),
        "campaign": job.export.campaign,
        "series": training_job_metric_series(job=job),
    }
    return render(request, "frontend/training_job.html", context)


def _evaluation_context(job: TrainingJob) -> dict:
    evaluation = training_job_evaluation(job=job)
    if evaluation is not None:
        # Judgments still come in while the campaign is generating or open: keep polling.
        status = job.evaluation_campaign.status
        evaluation["open"] = status not in (Campaign.Status.CLOSED, Campaign.Status.PAUSED)
    context = {"evaluation": evaluation}
    if job.status == TrainingJob.Status.DONE and context["evaluation"] is None:
        judges = evaluation_default_judges(job=job)
        form = EvaluationForm(initial={"judges": "\n".join(j.get_username() for j in judges)})
        context["evaluation_form"] = form
        context["design"] = _design(job, form.initial | _initials(form), len(judges))
    return context


def _initials(form: EvaluationForm) -> dict:
    return {name: field.initial for name, field in form.fields.items()}


def _design(job: TrainingJob, values: dict, judges: int):
    try:
        return evaluation_plan(
            job=job,
            prompts=values.get("prompts"),
            seeds_per_prompt=values["seeds_per_prompt"],
            overlap=values["overlap"],
            judges=judges,
        )
    except (OSError, ValueError):  # the export's files are unreadable: no estimate
        return None


def _judges(job: TrainingJob, text: str) -> list:
    """The people named, or the default judges when the field is blank."""
    return users_find(text=text) if text.strip() else evaluation_default_judges(job=job)


@login_required
@require_http_methods(["GET"])
def training_job_status(request, job_id: int):
    """The status card, polled by htmx while the job is queued or running. Once the job has
    ended the answer also replaces the evaluation card (out of band), so its form appears
    without a reload, and carries no trigger, so polling stops."""
    job = training_job_get_for_user(user=request.user, job_id=job_id)
    context = _status_context(job)
    if not context["active"]:
        context.update(_evaluation_context(job))
    return render(request, "frontend/partials/training_status_poll.html", context)


@login_required
@require_POST
def training_job_cancel_view(request, job_id: int):
    job = training_job_get_for_user(user=request.user, job_id=job_id)
    try:
        training_job_cancel(job=job)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("Cancel requested."))
    return redirect(_job_url(job))


@login_required
@require_GET
def training_job_evaluation_card(request, job_id: int):
    """The evaluation card alone, polled while its campaign collects judgments, so the
    win-rate and its interval move without a reload."""
    job = training_job_get_for_user(user=request.user, job_id=job_id)
    context = {"job": job, **_evaluation_context(job)}
    return render(request, "frontend/partials/training_evaluation.html", context)


@login_required
@require_GET
def training_job_evaluation_estimate(request, job_id: int):
    """The campaign's size and expected interval width for the form's current values,
    fetched by htmx as they change, before anything is created."""
    job = training_job_get_for_user(user=request.user, job_id=job_id)
    form = EvaluationSizeForm(request.GET)
    design, error = None, None
    if form.is_valid():
        try:
            judges = _judges(job, form.cleaned_data["judges"])
        except ApplicationError as refused:
            error = refused
        else:
            design = _design(job, form.cleaned_data, len(judges))
    context = {"design": design, "estimate_error": error, "estimate_form": form}
    return render(request, "frontend/partials/evaluation_estimate.html", context)


@login_required
@require_POST
def training_job_evaluate_view(request, job_id: int):
    job = training_job_get_for_user(user=request.user, job_id=job_id)
    form = EvaluationForm(request.POST)
    if not form.is_valid():
        for name, errors in form.errors.items():
            for error in errors:
                messages.error(request, f"{form.fields[name].label}: {error}")
        return redirect(_job_url(job))
    try:
        campaign = evaluation_campaign_create(
            job=job,
            by=request.user,
            judges=_judges(job, form.cleaned_data["judges"]),
            **form.service_options(),
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        for row in (error.extra or {}).get("errors", []):
            messages.error(
                request, f"{form.fields['judges'].label}, line {row['line']}: {row['error']}"
            )
    else:
        messages.success(
            request,
            _("Evaluation campaign %(slug)s created; its images are being generated.")
            % {"slug": campaign.slug},
        )
    return redirect(_job_url(job))
