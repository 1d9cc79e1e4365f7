"""Reads for the annotation domain, shared by the API, the pages and the commands."""

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from annotate.access import user_is_site_admin, user_is_site_researcher
from annotate.models import (
    Assignment,
    Campaign,
    Comparison,
    ComparisonImage,
    Image,
    Judgment,
    Membership,
)


def campaign_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Campaign]:
    if user_is_site_admin(user) or user_is_site_researcher(user):
        return Campaign.objects.all()
    return Campaign.objects.filter(memberships__user=user).distinct()


@dataclass(frozen=True)
class TaskContent:
    """What a task shows: the prompt's text and the comparison's images by uid."""

    prompt_text: str
    images: dict[str, Image]  # uid -> an Image with file, width and height loaded
    uids: list[str]  # the images' uids in slot order


def task_content(*, comparison_id: int) -> TaskContent:
    """One query: the comparison's images in slot order, with the prompt."""
    slots = list(
        ComparisonImage.objects.filter(comparison_id=comparison_id)
        .select_related("image", "comparison__prompt")
        .only(
            "image__uid", "image__file", "image__width", "image__height", "comparison__prompt__text"
        )
        .order_by("slot")
    )
    return task_content_from_rows(
        prompt_text=slots[0].comparison.prompt.text,
        rows=[(s.image.uid, s.image.file.name, s.image.width, s.image.height) for s in slots],
    )


def task_content_from_rows(*, prompt_text: str, rows: list[tuple]) -> TaskContent:
    """From (uid, file name, width, height) rows in slot order, as the engine reads them."""
    images = {
        str(uid): Image(uid=uid, file=name, width=width, height=height)
        for uid, name, width, height in rows
    }
    return TaskContent(prompt_text=prompt_text, images=images, uids=list(images))


def assignment_task(*, assignment: Assignment) -> dict:
    """What an annotator sees of a task: never the gold answer, model names or other raters.

    Uses the content the assignment engine read while picking (`assignment.task_content`)
    where it is there, so serving a new task costs no query here.
    """
    campaign = assignment.campaign
    content = getattr(assignment, "task_content", None) or task_content(
        comparison_id=assignment.comparison_id
    )
    # A repeat shows the same images as its original, in the order stored on the assignment.
    images = content.images
    return {
        "id": assignment.pk,
        "kind": campaign.kind,
        "expires_at": assignment.expires_at,
        "prompt": {"text": content.prompt_text},
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
    """An annotator's own progress: how many tasks they answered, and their gate state.

    No count of what is left: it would drop after a regular task and not after a gold or
    repeat one, telling the annotator which tasks are checks."""
    membership = Membership.objects.filter(campaign=campaign, user=user).first()
    judged = Assignment.objects.filter(
        campaign=campaign, annotator=user, state=Assignment.State.SUBMITTED
    ).count()
    return {
        "judged": judged,
        "gate_state": membership.gate_state if membership else None,
        "gate_reason": membership.gate_reason if membership else "",
    }


def campaign_members(*, campaign: Campaign, limit: int = 1000) -> list[Membership]:
    """The campaign's members, admins first, each with `judged`: their judgments in it."""
    judged = Judgment.objects.filter(campaign=campaign, annotator=OuterRef("user_id"))
    return list(
        Membership.objects.filter(campaign=campaign)
        .select_related("user")
        .annotate(
            judged=Coalesce(
                Subquery(judged.order_by().values("annotator").annotate(n=Count("id")).values("n")),
                0,
            )
        )
        .order_by("role", "user__username")[:limit]
    )


def campaign_prompts_page(*, campaign: Campaign, limit: int = 200) -> dict:
    """The campaign's prompt count and its latest `limit` prompts, each with `images`."""
    prompts = campaign.prompts.all()
    latest = list(
        prompts.annotate(image_count=Count("images"))
        .only("id", "text", "negative_prompt")
        .order_by("-id")[:limit]
    )
    return {"count": prompts.count(), "latest": latest}
