"""Creating a campaign and changing its settings and status from the browser.

Thin: forms shape the input, annotate's services decide and write, errors come back as
sentences on the page.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from annotate.access import MANAGERS, campaign_get_for_user, user_may_create_campaigns
from annotate.campaign_checks import campaign_size, campaign_warnings, gold_count_for
from annotate.models import Campaign, Membership
from annotate.services.campaigns import (
    STATUS_ACTIONS,
    campaign_create,
    campaign_slug_new,
    campaign_status_change,
    campaign_update_draft,
)
from frontend.campaign_forms import (
    MAX_INSTRUCTIONS_CHARS,
    CampaignForm,
    CriterionFormSet,
    criterion_rows,
)
from pickwise.errors import ApplicationError

PREVIEW_TOO_LONG = "Instructions are limited to {limit} characters; these have {count}."


def _add_service_error(form: CampaignForm, error: Exception) -> None:
    if isinstance(error, ApplicationError):
        form.add_error(None, error.message)
    else:  # ValidationError from full_clean or the criteria check
        for messages_ in getattr(error, "message_dict", {"": error.messages}).values():
            for message in messages_:
                form.add_error(None, message)


def _render_form(request, *, form, criteria, campaign=None, status=200):
    context = {
        "form": form,
        "criteria": criteria,
        "campaign": campaign,
        "instructions_limit": MAX_INSTRUCTIONS_CHARS,
    }
    if campaign is not None:
        size = campaign_size(campaign=campaign)
        context.update(
            size=size,
            planned_gold=gold_count_for(regular_comparisons=size.regular),
            warnings=campaign_warnings(campaign=campaign, size=size),
            editable=campaign.status == Campaign.Status.DRAFT,
            actions=[
                action
                for action, (_target, sources, _done) in STATUS_ACTIONS.items()
                if campaign.status in sources
            ],
        )
    return render(request, "frontend/campaign_form.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def campaign_new(request):
    if not user_may_create_campaigns(request.user):
        raise PermissionDenied
    initial_rows = criterion_rows()
    if request.method == "GET":
        form = CampaignForm()
        criteria = CriterionFormSet(prefix="criteria", initial=initial_rows)
        return _render_form(request, form=form, criteria=criteria)
    form = CampaignForm(request.POST)
    criteria = CriterionFormSet(request.POST, prefix="criteria", initial=initial_rows)
    if form.is_valid() and criteria.is_valid():
        slug = form.cleaned_data["slug"] or campaign_slug_new(title=form.cleaned_data["title"])
        try:
            campaign = campaign_create(
                slug=slug,
                created_by=request.user,
                criteria=criteria.criteria(),
                **form.service_fields(),
            )
        except (ApplicationError, ValidationError) as error:
            _add_service_error(form, error)
        else:
            messages.success(
                request, _("Campaign created as a draft. Next: add its prompts and members.")
            )
            return redirect("frontend:campaign-settings", campaign.pk)
    return _render_form(request, form=form, criteria=criteria, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def campaign_settings(request, campaign_id: int):
    campaign = campaign_get_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGERS)
    initial_rows = criterion_rows(campaign.criteria)
    if request.method == "GET":
        form = CampaignForm(initial=CampaignForm.initial_for(campaign), creating=False)
        criteria = CriterionFormSet(prefix="criteria", initial=initial_rows)
        return _render_form(request, form=form, criteria=criteria, campaign=campaign)
    form = CampaignForm(request.POST, creating=False)
    criteria = CriterionFormSet(request.POST, prefix="criteria", initial=initial_rows)
    status = 400
    if form.is_valid() and criteria.is_valid():
        try:
            campaign = campaign_update_draft(
                campaign=campaign, criteria=criteria.criteria(), **form.service_fields()
            )
        except (ApplicationError, ValidationError) as error:
            _add_service_error(form, error)
            status = getattr(error, "status", 400)
        else:
            messages.success(request, _("Settings saved."))
            return redirect("frontend:campaign-settings", campaign.pk)
    return _render_form(request, form=form, criteria=criteria, campaign=campaign, status=status)


@login_required
@require_POST
def campaign_status(request, campaign_id: int):
    campaign = campaign_get_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGERS)
    try:
        campaign = campaign_status_change(campaign=campaign, action=request.POST.get("action", ""))
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request, _("The campaign is now %(status)s.") % {"status": campaign.status}
        )
    return redirect("frontend:campaign-settings", campaign.pk)


@login_required
@require_POST
def instructions_preview(request):
    """The instructions rendered as annotators will see them (htmx swaps this in)."""
    may_write = (
        user_may_create_campaigns(request.user)
        or Membership.objects.filter(user=request.user, role=Membership.Role.ADMIN).exists()
    )
    if not may_write:
        raise PermissionDenied
    text = request.POST.get("instructions", "")
    if len(text) > MAX_INSTRUCTIONS_CHARS:
        message = PREVIEW_TOO_LONG.format(limit=MAX_INSTRUCTIONS_CHARS, count=len(text))
        return HttpResponse(
            render_to_string("frontend/partials/message.html", {"message": message}),
            status=413,
        )
    return render(request, "frontend/partials/instructions_preview.html", {"text": text})
