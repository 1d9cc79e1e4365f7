"""Creating and changing campaigns and who takes part in them."""

import secrets
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from annotate.criteria import normalise_criteria, validate_criteria
from annotate.models import Campaign, Comparison, Membership
from annotate.services.overlap import fresh_priority
from pickwise.enqueue import enqueue_on_commit
from pickwise.errors import ApplicationError

CAMPAIGN_FIELDS = (
    "title",
    "instructions",
    "kind",
    "k",
    "criteria",
    "overlap",
    "dynamic_overlap",
    "min_raters",
    "max_raters",
    "confidence",
    "gold_rate",
    "repeat_rate",
    "qualification_size",
    "lease_seconds",
    "pairs_per_prompt",
    "active_sampling",
    "qc_policy",
    "status",
)
# Fields that decide how many judgments each comparison wants.
OVERLAP_FIELDS = ("overlap", "dynamic_overlap", "min_raters", "max_raters")
# Fields that decide how comparisons were built; they cannot change once there are some.
DESIGN_FIELDS = ("kind", "k")
DESIGN_LOCKED = "kind and k cannot change once the campaign has comparisons."
SLUG_TAKEN = "A campaign with slug {slug!r} exists already."
ONLY_DRAFT_EDITABLE = (
    "Only a draft campaign can be edited; this one is {status}. Its settings decide what "
    "annotators already answered."
)
BAD_TRANSITION = "A campaign that is {status} cannot be {done}."
NOTHING_TO_JUDGE = (
    "The campaign has nothing to judge yet: add prompts and their images before opening it."
)
# Status changes people make (generation moves generating -> active itself), and the states
# each may start from.
STATUS_ACTIONS = {
    "open": (Campaign.Status.ACTIVE, (Campaign.Status.DRAFT, Campaign.Status.PAUSED), "opened"),
    "pause": (Campaign.Status.PAUSED, (Campaign.Status.ACTIVE,), "paused"),
    "close": (
        Campaign.Status.CLOSED,
        (
            Campaign.Status.DRAFT,
            Campaign.Status.GENERATING,
            Campaign.Status.ACTIVE,
            Campaign.Status.PAUSED,
        ),
        "closed",
    ),
}
UNKNOWN_ACTION = "Unknown status change {action!r}; use open, pause or close."


@transaction.atomic
def campaign_create(
    *, slug: str, title: str, created_by: AbstractBaseUser | None = None, **fields: Any
) -> Campaign:
    """Create a campaign and make its creator a campaign admin."""
    unknown = set(fields) - set(CAMPAIGN_FIELDS)
    if unknown:
        raise ApplicationError(f"Unknown campaign fields: {sorted(unknown)}.", code="invalid")
    if Campaign.objects.filter(slug=slug).exists():
        raise ApplicationError(SLUG_TAKEN.format(slug=slug), code="duplicate", status=409)
    if fields.get("kind") == Campaign.Kind.PAIRWISE and "k" not in fields:
        fields["k"] = 2
    if fields.get("kind") == Campaign.Kind.RANKING and "k" not in fields:
        fields["k"] = 4
    if "criteria" in fields:
        validate_criteria(fields["criteria"])
        fields["criteria"] = normalise_criteria(fields["criteria"])
    campaign = Campaign(slug=slug, title=title, created_by=created_by, **fields)
    campaign.full_clean()
    campaign.save()
    if created_by is not None:
        membership_set(campaign=campaign, user=created_by, role=Membership.Role.ADMIN)
    return campaign


@transaction.atomic
def campaign_update(*, campaign: Campaign, **fields: Any) -> Campaign:
    unknown = set(fields) - set(CAMPAIGN_FIELDS)
    if unknown:
        raise ApplicationError(f"Unknown campaign fields: {sorted(unknown)}.", code="invalid")
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    changes_design = any(f in fields and fields[f] != getattr(campaign, f) for f in DESIGN_FIELDS)
    if changes_design and campaign.comparisons.exists():
        raise ApplicationError(DESIGN_LOCKED, code="design_locked", status=409)
    if "criteria" in fields:
        validate_criteria(fields["criteria"])
        fields["criteria"] = normalise_criteria(fields["criteria"])
    for name, value in fields.items():
        setattr(campaign, name, value)
    campaign.full_clean()
    campaign.save(update_fields=list(fields) or None)
    if any(name in fields for name in OVERLAP_FIELDS):
        _apply_overlap(campaign)
    if "active_sampling" in fields:
        _enqueue_active_refresh(campaign)
    return campaign


def _enqueue_active_refresh(campaign: Campaign) -> None:
    """Rank the model pairs now that active sampling is on, or set every priority back to 0
    now that it is off (a task: it reads every comparison of the campaign)."""
    from annotate.quality.tasks import active_sampling_refresh_task

    enqueue_on_commit(active_sampling_refresh_task, campaign.pk)


def campaign_slug_new(*, title: str) -> str:
    """A free slug made from the title: "my-study", then "my-study-2", "my-study-3", ..."""
    base = slugify(title)[:56].strip("-") or "campaign"
    taken = set(Campaign.objects.filter(slug__startswith=base).values_list("slug", flat=True))
    if base not in taken:
        return base
    number = 2
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"


@transaction.atomic
def campaign_update_draft(*, campaign: Campaign, **fields: Any) -> Campaign:
    """Change a campaign's settings, which is allowed only while it is a draft."""
    current = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if current.status != Campaign.Status.DRAFT:
        raise ApplicationError(
            ONLY_DRAFT_EDITABLE.format(status=current.status), code="not_draft", status=409
        )
    return campaign_update(campaign=current, **fields)


@transaction.atomic
def campaign_status_change(*, campaign: Campaign, action: str) -> Campaign:
    """Open, pause or close a campaign. Opening needs regular comparisons to judge.

    Locks the campaign row, so two admins pressing buttons at once apply one after the other.
    """
    if action not in STATUS_ACTIONS:
        raise ApplicationError(UNKNOWN_ACTION.format(action=action), code="invalid")
    target, sources, done = STATUS_ACTIONS[action]
    current = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if current.status not in sources:
        raise ApplicationError(
            BAD_TRANSITION.format(status=current.status, done=done),
            code="bad_transition",
            status=409,
        )
    if (
        target == Campaign.Status.ACTIVE
        and not current.comparisons.filter(role=Comparison.Role.REGULAR).exists()
    ):
        raise ApplicationError(NOTHING_TO_JUDGE, code="nothing_to_judge", status=409)
    current.status = target
    current.save(update_fields=["status"])
    return current


def _apply_overlap(campaign: Campaign) -> None:
    """Carry a new overlap to the regular comparisons (kept per row for the DB check).

    With dynamic overlap a comparison's target starts at min_raters and submits move it
    (annotate.services.overlap): one found unsettled keeps asking for one more rater, within
    the new max_raters. Unless active sampling owns the priority: comparisons nobody has
    judged take the priority a new one starts at, the others keep theirs until their next
    submit; with a fixed overlap every priority goes back to 0."""
    regular = Comparison.objects.filter(campaign=campaign, role=Comparison.Role.REGULAR)
    fresh = fresh_priority(campaign)
    # Never below what is already done or in flight: the invariant holds at every moment.
    for comparison in regular.select_for_update().only(
        "id", "done", "in_flight", "status", "settled"
    ):
        wanted = max(campaign.initial_wanted(), comparison.done + comparison.in_flight)
        if campaign.dynamic_overlap and comparison.settled is False:
            wanted = max(wanted, min(campaign.max_raters, comparison.done + 1))
        status = comparison.status
        if status != Comparison.Status.RETIRED:
            status = (
                Comparison.Status.FULL
                if comparison.done + comparison.in_flight >= wanted
                else Comparison.Status.OPEN
            )
        fields = {"wanted": wanted, "status": status}
        if not campaign.active_sampling:
            if not campaign.dynamic_overlap:
                fields["priority"] = 0  # a fixed overlap serves the fullest first
            elif comparison.done + comparison.in_flight == 0:
                fields["priority"] = fresh
        Comparison.objects.filter(pk=comparison.pk).update(**fields)


def rater_key_new() -> int:
    # 53 bits: safe as a JSON number and as int64 in parquet.
    return secrets.randbits(53)


@transaction.atomic
def membership_set(
    *, campaign: Campaign, user: AbstractBaseUser, role: str, gate_state: str | None = None
) -> Membership:
    """Add the user to the campaign or change their role. Idempotent."""
    if role not in Membership.Role.values:
        raise ApplicationError(f"Unknown role {role!r}.", code="invalid")
    membership = Membership.objects.select_for_update().filter(campaign=campaign, user=user).first()
    if membership is None:
        needs_qualification = (
            role == Membership.Role.ANNOTATOR
            and campaign.qualification_size > 0
            and campaign.comparisons.filter(role=Comparison.Role.GOLD).exists()
        )
        state = gate_state or (
            Membership.Gate.QUALIFYING if needs_qualification else Membership.Gate.ACTIVE
        )
        membership = Membership(
            campaign=campaign,
            user=user,
            role=role,
            gate_state=state,
            gate_changed_at=timezone.now(),
            rater_key=rater_key_new(),
        )
        membership.full_clean()
        membership.save()
        return membership
    if membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    return membership
