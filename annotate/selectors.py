"""Reads for the annotation domain, shared by the API, the pages and the commands."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q, QuerySet, Sum

from annotate.access import user_is_site_admin, user_is_site_researcher
from annotate.models import (
    Assignment,
    Campaign,
    Comparison,
    ComparisonImage,
    Image,
    Membership,
)


def campaign_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Campaign]:
    if user_is_site_admin(user) or user_is_site_researcher(user):
        return Campaign.objects.all()
    return Campaign.objects.filter(memberships__user=user).distinct()


def assignment_task(*, assignment: Assignment) -> dict:
    """What an annotator sees of a task: never the gold answer, model names or other raters."""
    campaign = assignment.campaign
    # One query: the comparison's images with the prompt. A repeat shows the same images.
    slots = list(
        ComparisonImage.objects.filter(comparison_id=assignment.comparison_id)
        .select_related("image", "comparison__prompt")
        .only(
            "image__uid", "image__file", "image__width", "image__height", "comparison__prompt__text"
        )
    )
    images = {str(slot.image.uid): slot.image for slot in slots}
    return {
        "id": assignment.pk,
        "kind": campaign.kind,
        "expires_at": assignment.expires_at,
        "prompt": {"text": slots[0].comparison.prompt.text},
        "images": [
            {
                "uid": uid,
                "url": images[uid].file.url,
                "width": images[uid].width,
                "height": images[uid].height,
            }
            for uid in assignment.presented
        ],
        "criteria": campaign.criteria,
    }


def campaign_progress(*, campaign: Campaign) -> dict:
    """Regular comparisons judged vs wanted, for dashboards and the API."""
    totals = Comparison.objects.filter(campaign=campaign, role=Comparison.Role.REGULAR).aggregate(
        comparisons=Count("id"),
        wanted=Sum("wanted"),
        done=Sum("done"),
        in_flight=Sum("in_flight"),
        full=Count("id", filter=~Q(status=Comparison.Status.OPEN)),
    )
    gold = Comparison.objects.filter(campaign=campaign, role=Comparison.Role.GOLD).count()
    return {
        "comparisons": totals["comparisons"],
        "gold_comparisons": gold,
        "judgments_wanted": totals["wanted"] or 0,
        "judgments_done": totals["done"] or 0,
        "in_flight": totals["in_flight"] or 0,
        "prompts": campaign.prompts.count(),
        "images": Image.objects.filter(prompt__campaign=campaign).count(),
    }


def annotator_progress(*, campaign: Campaign, user: AbstractBaseUser) -> dict:
    """An annotator's own progress: what they did and what is still open to them."""
    membership = Membership.objects.filter(campaign=campaign, user=user).first()
    mine = Assignment.objects.filter(campaign=campaign, annotator=user)
    judged = mine.filter(state=Assignment.State.SUBMITTED).count()
    met = mine.filter(is_repeat=False).values("comparison_id")
    available = (
        Comparison.objects.filter(
            campaign=campaign, role=Comparison.Role.REGULAR, status=Comparison.Status.OPEN
        )
        .exclude(pk__in=met)
        .count()
    )
    return {
        "judged": judged,
        "available": available,
        "gate_state": membership.gate_state if membership else None,
        "gate_reason": membership.gate_reason if membership else "",
    }
