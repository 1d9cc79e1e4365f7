"""Creating and changing campaigns and who takes part in them."""

import secrets
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotate.criteria import normalise_criteria, validate_criteria
from annotate.models import Campaign, Comparison, Membership
from pickwise.errors import ApplicationError

CAMPAIGN_FIELDS = (
    "title",
    "instructions",
    "kind",
    "k",
    "criteria",
    "overlap",
    "gold_rate",
    "repeat_rate",
    "qualification_size",
    "lease_seconds",
    "pairs_per_prompt",
    "qc_policy",
    "status",
)
# Fields that decide how comparisons were built; they cannot change once there are some.
DESIGN_FIELDS = ("kind", "k")
DESIGN_LOCKED = "kind and k cannot change once the campaign has comparisons."
SLUG_TAKEN = "A campaign with slug {slug!r} exists already."


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
    if "overlap" in fields:
        _apply_overlap(campaign)
    return campaign


def _apply_overlap(campaign: Campaign) -> None:
    """Carry a new overlap to the regular comparisons (kept per row for the DB check)."""
    regular = Comparison.objects.filter(campaign=campaign, role=Comparison.Role.REGULAR)
    # Never below what is already done or in flight: the invariant holds at every moment.
    for comparison in regular.select_for_update().only("id", "done", "in_flight", "status"):
        wanted = max(campaign.overlap, comparison.done + comparison.in_flight)
        status = comparison.status
        if status != Comparison.Status.RETIRED:
            status = (
                Comparison.Status.FULL
                if comparison.done + comparison.in_flight >= wanted
                else Comparison.Status.OPEN
            )
        Comparison.objects.filter(pk=comparison.pk).update(wanted=wanted, status=status)


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
