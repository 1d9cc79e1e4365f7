"""The members page: who takes part in a campaign and in which role.

Thin: forms shape the lists, annotate.services.members decides and writes.
"""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from annotate.access import MANAGERS, campaign_get_for_user, user_may_create_campaigns
from annotate.selectors import campaign_members
from annotate.services.members import (
    annotators_create,
    members_add,
    membership_remove,
    membership_role_change,
)
from frontend.member_forms import AccountsCreateForm, MembersAddForm, RoleForm
from pickwise.errors import ApplicationError


def _manager_campaign(request, campaign_id: int):
    return campaign_get_for_user(user=request.user, campaign_id=campaign_id, roles=MANAGERS)


def _page(request, campaign, *, add_form=None, create_form=None, errors=None, status=200):
    context = {
        "campaign": campaign,
        "members": campaign_members(campaign=campaign),
        "add_form": add_form or MembersAddForm(),
        "create_form": create_form or AccountsCreateForm(),
        "may_create_accounts": user_may_create_campaigns(request.user),
        "role_form": RoleForm(),
        "row_errors": errors or [],
    }
    return render(request, "frontend/members.html", context, status=status)


def _refused(request, campaign, error: ApplicationError, **forms):
    """The page again with the service's sentence on the form and its bad lines listed."""
    for form in forms.values():
        form.add_error(None, error.message)
    return _page(request, campaign, errors=error.extra.get("errors"), status=error.status, **forms)


def _back_to_members(campaign):
    return redirect("frontend:campaign-members", campaign.pk)


@login_required
@require_GET
def members(request, campaign_id: int):
    return _page(request, _manager_campaign(request, campaign_id))


@login_required
@require_POST
def members_add_view(request, campaign_id: int):
    campaign = _manager_campaign(request, campaign_id)
    form = MembersAddForm(request.POST)
    if not form.is_valid():
        return _page(request, campaign, add_form=form, status=400)
    try:
        result = members_add(
            campaign=campaign, text=form.cleaned_data["people"], role=form.cleaned_data["role"]
        )
    except ApplicationError as error:
        return _refused(request, campaign, error, add_form=form)
    messages.success(
        request,
        _("%(added)s added, %(changed)s given a new role, %(unchanged)s already so.")
        % {
            "added": len(result.added),
            "changed": len(result.changed),
            "unchanged": len(result.unchanged),
        },
    )
    return _back_to_members(campaign)


def _member_user(campaign, user_id: int):
    user = get_user_model().objects.filter(pk=user_id, memberships__campaign=campaign).first()
    if user is None:
        raise Http404
    return user


@login_required
@require_POST
def member_role(request, campaign_id: int, user_id: int):
    campaign = _manager_campaign(request, campaign_id)
    user = _member_user(campaign, user_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors["role"]))
        return _back_to_members(campaign)
    try:
        membership_role_change(campaign=campaign, user=user, role=form.cleaned_data["role"])
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            _("%(user)s is now %(role)s.")
            % {"user": user.get_username(), "role": form.cleaned_data["role"]},
        )
    return _back_to_members(campaign)


@login_required
@require_POST
def member_remove(request, campaign_id: int, user_id: int):
    campaign = _manager_campaign(request, campaign_id)
    user = _member_user(campaign, user_id)
    try:
        membership_remove(campaign=campaign, user=user)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("%(user)s was removed.") % {"user": user.get_username()})
    return _back_to_members(campaign)


@never_cache
@login_required
@require_POST
def accounts_create(request, campaign_id: int):
    """Answers with the new passwords in the page itself: never in a redirect, a message or a
    log, and never cached, so they exist only in this one response."""
    campaign = _manager_campaign(request, campaign_id)
    if not user_may_create_campaigns(request.user):
        raise PermissionDenied
    form = AccountsCreateForm(request.POST)
    if not form.is_valid():
        return _page(request, campaign, create_form=form, status=400)
    try:
        created = annotators_create(campaign=campaign, text=form.cleaned_data["usernames"])
    except ApplicationError as error:
        return _refused(request, campaign, error, create_form=form)
    heading = ngettext(
        "%(count)s annotator account created", "%(count)s annotator accounts created", len(created)
    ) % {"count": len(created)}
    return render(
        request,
        "frontend/accounts_created.html",
        {"campaign": campaign, "created": created, "heading": heading},
    )
