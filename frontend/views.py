"""The annotator and admin pages. Thin: fetch-and-authorise, call selectors or services, render.

The annotate page renders the first task on the server (no round trip before the first
images); after that static/frontend/js/annotate.js drives the same JSON API the scripts use.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from annotate.access import (
    READERS,
    campaign_and_role_for_user,
    campaign_get_for_annotator,
    campaign_get_for_user,
    user_may_create_campaigns,
)
from annotate.models import Campaign, Membership
from annotate.quality.services import rater_gate_override
from annotate.selectors import (
    annotator_progress,
    campaign_overview_for_user,
    campaign_progress,
)
from annotate.services.assignments import CAMPAIGN_NOT_ACTIVE
from annotate.services.judgment_undo import UNDO_SECONDS
from frontend.access import rater_membership_get_for_manager
from frontend.forms import GateOverrideForm
from frontend.panels import (
    agreement_panel,
    job_panels,
    leaderboard_panel,
    percent,
    rater_panel,
)
from pickwise.errors import ApplicationError

HOME_CAMPAIGN_LIMIT = 100


@login_required
@require_GET
def home(request):
    rows = campaign_overview_for_user(user=request.user, limit=HOME_CAMPAIGN_LIMIT)
    for row in rows:
        if "progress" in row:
            row["percent"] = percent(
                row["progress"]["judgments_done"], row["progress"]["judgments_wanted"]
            )
    context = {"rows": rows, "may_create": user_may_create_campaigns(request.user)}
    return render(request, "frontend/home.html", context)


@login_required
@require_GET
def campaign_detail(request, campaign_id: int):
    campaign, role = campaign_and_role_for_user(user=request.user, campaign_id=campaign_id)
    context = {"campaign": campaign, "role": role}
    if role == Membership.Role.ANNOTATOR:
        context["mine"] = annotator_progress(campaign=campaign, user=request.user)
    return render(request, "frontend/campaign.html", context)


BLOCKED_REASON_UNKNOWN = _("Your answers did not meet the quality bar.")


def _page_state(*, campaign: Campaign, membership: Membership) -> tuple[str, str]:
    """(state, message) for the page: blocked, closed, or loading.

    The page only reads: the task is reserved by the page's script with POST .../next/, so
    opening, reloading or prefetching the page (a GET) never takes a task.
    """
    if membership.gate_state == Membership.Gate.BLOCKED:
        return "blocked", membership.gate_reason or BLOCKED_REASON_UNKNOWN
    if campaign.status != Campaign.Status.ACTIVE:
        return "closed", CAMPAIGN_NOT_ACTIVE.format(status=campaign.status)
    return "loading", ""


def _status_context(*, campaign: Campaign, user) -> dict:
    mine = annotator_progress(campaign=campaign, user=user)
    return {
        "campaign": campaign,
        "mine": mine,
        "qualifying": mine["qualifying"],
        # Counted against the campaign's size, never per item: which items are gold stays secret.
        "qualification_done": min(mine["qualification_done"], campaign.qualification_size),
        "qualification_longer": mine["qualification_done"] >= campaign.qualification_size,
    }


def _annotate_strings() -> dict[str, str]:
    """The words annotate.js shows, translated here so the script needs no catalogue."""
    return {
        "left": _("Left"),
        "right": _("Right"),
        "tie": _("Tie"),
        "showAll": _("Show all"),
        "showLess": _("Show less"),
        "bothBad": _("Both bad"),
        "leftImage": _("Left image"),
        "rightImage": _("Right image"),
        "top": _("Top"),
        "bottom": _("Bottom"),
        "topImage": _("Top image"),
        "bottomImage": _("Bottom image"),
        "imageN": _("Image %(n)s of %(k)s"),
        "imageShort": _("image %(n)s"),
        "generatedFor": _("generated for the prompt above"),
        "rankedLabel": _("Your ranking, best first"),
        "poolLabel": _("Not placed yet (drag, tap or press the number)"),
        "rankN": _("Rank %(rank)s: image %(n)s"),
        "placeNext": _("Place image %(n)s next"),
        "tieAbove": _("Tie with the image above"),
        "tieArmed": _("The next number ties with the image placed last."),
        "unplace": _("Take back"),
        "pendingOne": _("1 answer waiting to be sent"),
        "pendingMany": _("%(count)s answers waiting to be sent"),
        "offline": _("Connection lost. Your answers are kept and sent once it is back."),
        "expired": _("Time ran out on a task, so it went back to the pool; here is a fresh one."),
        "answeredElsewhere": _(
            "That task was answered or skipped in another tab or window; here is the next one."
        ),
        "undone": _("Answer undone: here is that task again."),
        "undoFailed": _("That answer could not be undone; it stands."),
        "firstStands": _("That task had already been answered; your first answer stands."),
        "invalid": _("The server could not accept an answer; it was dropped."),
    }


# Never from the HTTP cache: the page carries the task to show first, which a history
# navigation would otherwise bring back after it was answered.
@never_cache
@login_required
@require_GET
def annotate(request, campaign_id: int):
    campaign, membership = campaign_get_for_annotator(user=request.user, campaign_id=campaign_id)
    state, message = _page_state(campaign=campaign, membership=membership)
    config = {
        "campaignId": campaign.pk,
        "userId": request.user.pk,
        "kind": campaign.kind,
        "nextUrl": reverse("annotate:next", args=[campaign.pk]),
        "submitUrl": reverse("annotate:submit", args=[0]),
        "skipUrl": reverse("annotate:skip", args=[0]),
        "undoUrl": reverse("annotate:undo", args=[0]),
        "undoSeconds": UNDO_SECONDS,
        "loginUrl": reverse("frontend:login"),
        "pageUrl": request.get_full_path(),
        "state": state,
        "serverNow": timezone.now().isoformat(),
    }
    context = {
        **_status_context(campaign=campaign, user=request.user),
        "state": state,
        "message": message,
        "config": config,
        "i18n": _annotate_strings(),
        "undo_seconds": UNDO_SECONDS,
    }
    return render(request, "frontend/annotate.html", context)


@login_required
@require_GET
def annotate_status(request, campaign_id: int):
    """The progress banner, re-fetched by htmx after each acknowledged answer."""
    campaign, _membership = campaign_get_for_annotator(user=request.user, campaign_id=campaign_id)
    return render(
        request,
        "frontend/partials/annotate_status.html",
        _status_context(campaign=campaign, user=request.user),
    )


def _progress_context(campaign: Campaign) -> dict:
    progress = campaign_progress(campaign=campaign)
    return {
        "campaign": campaign,
        "progress": progress,
        "percent": percent(progress["judgments_done"], progress["judgments_wanted"]),
    }


@login_required
@require_GET
def dashboard(request, campaign_id: int):
    campaign, role = campaign_and_role_for_user(
        user=request.user, campaign_id=campaign_id, roles=READERS
    )
    context = {
        **_progress_context(campaign),
        "role": role,
        "may_manage": role == Membership.Role.ADMIN,
        "raters": rater_panel(campaign=campaign),
        "agreement": agreement_panel(campaign=campaign),
        "leaderboard": leaderboard_panel(campaign=campaign),
        "jobs": job_panels(campaign=campaign),
    }
    return render(request, "frontend/dashboard.html", context)


@login_required
@require_GET
def dashboard_progress(request, campaign_id: int):
    """The progress panel alone, polled by htmx so the bars move while people work."""
    campaign = campaign_get_for_user(user=request.user, campaign_id=campaign_id, roles=READERS)
    return render(request, "frontend/partials/progress.html", _progress_context(campaign))


@login_required
@require_GET
def dashboard_jobs(request, campaign_id: int):
    """The job panels alone, polled by htmx while a job runs; the answer without a job
    running carries no trigger, so polling stops, and shows the finished jobs' links."""
    campaign = campaign_get_for_user(user=request.user, campaign_id=campaign_id, roles=READERS)
    context = {"campaign": campaign, "jobs": job_panels(campaign=campaign)}
    return render(request, "frontend/partials/job_panels.html", context)


@login_required
@require_POST
def rater_gate(request, campaign_id: int, user_id: int):
    membership = rater_membership_get_for_manager(
        user=request.user, campaign_id=campaign_id, rater_id=user_id
    )
    dashboard_url = reverse("frontend:dashboard", args=[campaign_id]) + "#raters"
    form = GateOverrideForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect(dashboard_url)
    state = (
        Membership.Gate.BLOCKED
        if form.cleaned_data["action"] == "block"
        else Membership.Gate.ACTIVE
    )
    try:
        rater_gate_override(
            campaign=membership.campaign,
            user=membership.user,
            state=state,
            reason=form.cleaned_data["reason"],
            by=request.user,
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            _("%(user)s is now %(state)s.")
            % {"user": membership.user.get_username(), "state": state},
        )
    return redirect(dashboard_url)
