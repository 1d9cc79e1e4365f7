"""The exports page: start an export of the campaign, follow it, download its files.

Thin: exports.services.export_create checks and records the request, a worker builds it;
the formats come from the one registry in exports.formats.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from annotate.access import READERS, campaign_get_for_user, campaign_role
from annotate.models import Campaign, Membership
from exports.formats import EXPORT_FORMATS, export_format
from exports.models import Export
from exports.selectors import export_files, export_list
from exports.services import export_create
from frontend.export_forms import ExportStartForm
from frontend.panels import TRAINABLE_FORMATS, percent
from pickwise.errors import ApplicationError

LIST_LIMIT = 10
COMBINABLE_LIMIT = 100
ACTIVE = (Export.Status.PENDING, Export.Status.RUNNING)


def download_folder(export: Export) -> str:
    """The folder name the page suggests downloading the files into."""
    return f"{export.campaign.slug}-{export.format}-v{export.version}"


def load_dataset_lines(export: Export) -> list[str]:
    folder = download_folder(export)
    fmt = export_format(export.format)
    lines = [f'load_dataset("{folder}")']
    lines += [f'load_dataset("{folder}", "{config}")' for config in (fmt.configs if fmt else ())]
    return lines


def _row(export: Export) -> dict:
    files = [
        {**entry, "url": reverse("exports:file", args=[export.pk, entry["name"]])}
        for entry in export_files(export=export)
    ]
    finished = export.status == Export.Status.FINISHED
    return {
        "export": export,
        "format": export_format(export.format),
        "percent": percent(export.progress_done, export.progress_total),
        "files": files,
        "folder": download_folder(export),
        "load_lines": load_dataset_lines(export) if finished else [],
        "train_url": (
            reverse("frontend:training-start", args=[export.pk])
            if finished and export.format in TRAINABLE_FORMATS
            else None
        ),
    }


def _list_context(campaign) -> dict:
    rows = [_row(export) for export in export_list(campaign=campaign)[:LIST_LIMIT]]
    active = any(row["export"].status in ACTIVE for row in rows)
    return {"campaign": campaign, "rows": rows, "active": active}


def _campaign(request, campaign_id: int):
    return campaign_get_for_user(user=request.user, campaign_id=campaign_id, roles=READERS)


def _combinable(request, campaign):
    """Other campaigns of the same kind the user reads: those an export may combine."""
    return (
        Campaign.objects.filter(
            kind=campaign.kind, memberships__user=request.user, memberships__role__in=READERS
        )
        .exclude(pk=campaign.pk)
        .order_by("created_at", "id")
        .distinct()[:COMBINABLE_LIMIT]
    )


def _form(request, campaign, data=None) -> ExportStartForm:
    return ExportStartForm(
        data, criteria=campaign.criteria, combinable=_combinable(request, campaign)
    )


def _page(request, campaign, *, form=None, status=200):
    role = campaign_role(user=request.user, campaign=campaign)
    context = {
        **_list_context(campaign),
        "form": form or _form(request, campaign),
        "formats": EXPORT_FORMATS,
        "may_manage": role == Membership.Role.ADMIN,
    }
    return render(request, "frontend/exports.html", context, status=status)


@login_required
@require_GET
def exports(request, campaign_id: int):
    return _page(request, _campaign(request, campaign_id))


@login_required
@require_GET
def exports_list(request, campaign_id: int):
    """The exports list alone, polled by htmx while an export is being built; the answer
    once none is carries the files and no trigger."""
    campaign = _campaign(request, campaign_id)
    return render(request, "frontend/partials/export_list.html", _list_context(campaign))


@login_required
@require_POST
def exports_start(request, campaign_id: int):
    campaign = _campaign(request, campaign_id)
    form = _form(request, campaign, request.POST)
    if not form.is_valid():
        return _page(request, campaign, form=form, status=400)
    also = [
        campaign_get_for_user(user=request.user, campaign_id=other, roles=READERS)
        for other in form.cleaned_data["also"]
    ]
    try:
        export = export_create(
            requested_by=request.user, campaign=campaign, also=also, **form.export_options()
        )
    except ApplicationError as error:
        form.add_error(None, error.message)
        return _page(request, campaign, form=form, status=error.status)
    messages.success(
        request,
        _("Export %(format)s v%(version)s is queued.")
        % {"format": export.format, "version": export.version},
    )
    return redirect("frontend:campaign-exports", campaign.pk)
