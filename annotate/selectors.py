"""Reads for the annotation domain, shared by the API, the pages and the commands."""

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from annotate.access import user_is_site_admin, user_is_site_researcher
from annotate.models import (
    Assignment,
    Campaign,
    Comparison,
    ComparisonImage,
    Image,
    ImageImport,
    Judgment,
    Membership,
)
from annotate.quality.models import GateEvent


def campaign_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Campaign]:
    if user_is_site_admin(user) or user_is_site_researcher(user):
        return Campaign.objects.all()
    return Campaign.objects.filter(memberships__user=user).distinct()


def campaign_list_newest_for_user(*, user: AbstractBaseUser, limit: int) -> list[Campaign]:
    """The user's campaigns, newest first, each with `annotating`: whether the user works in
    it as an annotator and so sees the annotator's fields only (never for site admins)."""
    annotating = Membership.objects.filter(
        user_id=user.pk, campaign=OuterRef("pk"), role=Membership.Role.ANNOTATOR
    )
    campaigns = campaign_list_for_user(user=user).order_by("-created_at")
    if user_is_site_admin(user):
        campaigns = campaigns.annotate(annotating=Value(False))
    else:
        campaigns = campaigns.annotate(annotating=Exists(annotating))
    return list(campaigns[:limit])


def comparison_canonical_images(*, comparison_id: int) -> list[tuple[int, str]]:
    """(image id, uid) of a comparison's images in canonical order: ascending image id."""
    return [
        (image_id, str(uid))
        for image_id, uid in ComparisonImage.objects.filter(comparison_id=comparison_id)
        .order_by("image_id")
        .values_list("image_id", "image__uid")
    ]


@dataclass(frozen=True)
class TaskContent:
    """What a task shows: the prompt's text and the comparison's images by uid."""

    prompt_text: str
    images: dict[str, Image]  # uid -> an Image with file, width and height loaded
    uids: list[str]  # the images' uids in slot order


def comparison_overlap_figures(
    *, comparison_ids: list[int], chunk: int = 5000
) -> dict[int, tuple[int, bool | None]]:
    """Per comparison: counted judgments (done) and whether dynamic overlap settled it."""
    figures: dict[int, tuple[int, bool | None]] = {}
    for start in range(0, len(comparison_ids), chunk):
        rows = Comparison.objects.filter(pk__in=comparison_ids[start : start + chunk])
        for pk, done, settled in rows.values_list("pk", "done", "settled"):
            figures[pk] = (done, settled)
    return figures


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


# Counters -------------------------------------------------------------------------------
#
# Every figure shown to annotators and admins comes from here:
# - judgments: regular judgments that count towards overlap (not excluded by gating). The
#   dashboard's and the API's "Judgments" (judgments_done). Equal to the sum of the regular
#   comparisons' `done` counters.
# - qualification: gold items answered while the annotator was qualifying (up to the first
#   gate change away from qualifying).
# - gold: gold items answered after that (hidden checks); repeats: hidden repeats.
# - excluded: regular judgments of blocked raters, no longer counted.
# - answers: every answer given = judgments + excluded + qualification + gold + repeats.
#   The annotator's "Done" is their own `answers`: it must not reveal which tasks were
#   checks, so an annotator never sees the split beyond their qualification count.
# - skipped: tasks handed back unanswered (not answers).


def _qualification_end(campaign: Campaign, annotator) -> Subquery:
    """When the annotator first left the qualifying state (None: never did)."""
    return Subquery(
        GateEvent.objects.filter(
            campaign=campaign, annotator=annotator, from_state=Membership.Gate.QUALIFYING
        )
        .order_by("created_at", "id")
        .values("created_at")[:1]
    )


# Which answered assignments each counter counts (on Assignment rows).
_ANSWERED = Q(judgment__isnull=False)
_REGULAR_ANSWER = _ANSWERED & Q(is_gold=False, is_repeat=False)
_GOLD_ANSWER = _ANSWERED & Q(is_gold=True)
_REPEAT_ANSWER = _ANSWERED & Q(is_repeat=True)
_COUNTED_JUDGMENT = _REGULAR_ANSWER & Q(judgment__excluded=False)


def _tally(assignments: QuerySet[Assignment], *, qualification: Q) -> dict:
    """One pass over the assignments (and their judgments) gives every counter."""
    regular = _REGULAR_ANSWER
    gold = _GOLD_ANSWER
    totals = assignments.aggregate(
        judgments=Count("pk", filter=_COUNTED_JUDGMENT),
        excluded=Count("pk", filter=regular & Q(judgment__excluded=True)),
        repeats=Count("pk", filter=_REPEAT_ANSWER),
        gold_all=Count("pk", filter=gold),
        qualification=Count("pk", filter=gold & qualification),
        skipped=Count("pk", filter=Q(state=Assignment.State.SKIPPED)),
    )
    counts = {name: totals[name] or 0 for name in totals}
    counts["gold"] = counts.pop("gold_all") - counts["qualification"]
    counts["answers"] = sum(
        counts[name] for name in ("judgments", "excluded", "qualification", "gold", "repeats")
    )
    return counts


def answer_counts(*, campaign: Campaign) -> dict:
    """The counters above for the whole campaign (two queries)."""
    assignments = Assignment.objects.filter(campaign=campaign)
    counts = _tally(assignments, qualification=Q(pk__in=[]))
    # Which gold answers were given while qualifying, per annotator: gold answers only.
    still_qualifying = Membership.objects.filter(
        campaign=campaign, user=OuterRef("annotator"), gate_state=Membership.Gate.QUALIFYING
    )
    qualification = (
        assignments.filter(is_gold=True, judgment__isnull=False)
        .annotate(
            ended=_qualification_end(campaign, OuterRef("annotator")),
            qualifying=Exists(still_qualifying),
        )
        .aggregate(
            n=Count("pk", filter=Q(qualifying=True) | Q(judgment__created_at__lte=F("ended")))
        )
    )["n"]
    counts["gold"] -= qualification
    counts["qualification"] = qualification
    return counts


def annotator_answer_counts(*, campaign: Campaign, membership: Membership) -> dict:
    """The counters above for one annotator; `membership` carries `qualification_ended`
    (see annotator_progress)."""
    if membership.gate_state == Membership.Gate.QUALIFYING:
        qualification = Q()
    elif membership.qualification_ended is not None:
        qualification = Q(judgment__created_at__lte=membership.qualification_ended)
    else:
        qualification = Q(pk__in=[])  # never qualified: started active
    assignments = Assignment.objects.filter(campaign=campaign, annotator_id=membership.user_id)
    return _tally(assignments, qualification=qualification)


def campaign_progress(*, campaign: Campaign) -> dict:
    """Regular comparisons judged vs wanted, and every answer by kind, for the dashboard and
    the API (admins and researchers: the split tells which items were checks)."""
    regular = Q(role=Comparison.Role.REGULAR)
    totals = Comparison.objects.filter(campaign=campaign).aggregate(
        comparisons=Count("id", filter=regular),
        gold=Count("id", filter=Q(role=Comparison.Role.GOLD)),
        wanted=Sum("wanted", filter=regular),
        in_flight=Sum("in_flight", filter=regular),
    )
    counts = answer_counts(campaign=campaign)
    return {
        "comparisons": totals["comparisons"],
        "gold_comparisons": totals["gold"],
        "judgments_wanted": totals["wanted"] or 0,
        "judgments_done": counts["judgments"],
        "excluded_judgments": counts["excluded"],
        "qualification_answers": counts["qualification"],
        "gold_answers": counts["gold"],
        "repeat_answers": counts["repeats"],
        "answers": counts["answers"],
        "skipped": counts["skipped"],
        "in_flight": totals["in_flight"] or 0,
        "prompts": campaign.prompts.count(),
        "images": Image.objects.filter(prompt__campaign=campaign).count(),
    }


# What an annotator may read of their own figures (the API's `mine`). No count of what is
# left: it would drop after a regular task and not after a gold or repeat one, telling the
# annotator which tasks are checks. Their answers move by one whatever the task was.
ANNOTATOR_FIGURES = ("judged", "qualifying", "qualification_done", "skipped")


def annotator_progress(*, campaign: Campaign, user: AbstractBaseUser) -> dict:
    """An annotator's own figures: answers given ("Done", every kind alike), tasks skipped,
    their qualification and gate state. Never the split into checks and regular work."""
    membership = (
        Membership.objects.filter(campaign=campaign, user=user)
        .annotate(qualification_ended=_qualification_end(campaign, user))
        .first()
    )
    if membership is None:
        counts = {"answers": 0, "qualification": 0, "skipped": 0}
    else:
        counts = annotator_answer_counts(campaign=campaign, membership=membership)
    qualifying = (
        membership is not None
        and membership.gate_state == Membership.Gate.QUALIFYING
        and campaign.qualification_size > 0
    )
    return {
        "judged": counts["answers"],
        "qualifying": qualifying,
        "qualification_done": counts["qualification"],
        "skipped": counts["skipped"],
        "gate_state": membership.gate_state if membership else None,
        "gate_reason": membership.gate_reason if membership else "",
    }


def campaign_overview_for_user(*, user: AbstractBaseUser, limit: int) -> list[dict]:
    """The home page: the user's campaigns (at most `limit`), each with the user's role and,
    for an annotator, their own answers and gate state (`mine`, as annotator_progress gives
    `judged` and `gate_state`), for admins and researchers the judgments done and wanted
    (`progress`, as campaign_progress). A fixed number of queries, whatever the number of
    campaigns: the figures are grouped by campaign, not read campaign by campaign.
    """
    campaigns = list(campaign_list_for_user(user=user)[:limit])
    ids = [campaign.pk for campaign in campaigns]
    memberships = {
        campaign_id: (role, gate_state)
        for campaign_id, role, gate_state in Membership.objects.filter(
            user_id=user.pk, campaign_id__in=ids
        ).values_list("campaign_id", "role", "gate_state")
    }
    # The roles of campaign_role, decided once for the page. A campaign without a membership
    # is listed only to site researchers (campaign_list_for_user), so it is read as one.
    site_admin = user_is_site_admin(user)
    rows = []
    for campaign in campaigns:
        role, gate_state = memberships.get(campaign.pk, (None, None))
        if site_admin:
            role = Membership.Role.ADMIN
        elif role is None:
            role = Membership.Role.RESEARCHER
        rows.append({"campaign": campaign, "role": role, "gate_state": gate_state})

    annotating = [row["campaign"].pk for row in rows if row["role"] == Membership.Role.ANNOTATOR]
    reading = [row["campaign"].pk for row in rows if row["role"] != Membership.Role.ANNOTATOR]
    judged = dict(
        Assignment.objects.filter(campaign_id__in=annotating, annotator_id=user.pk)
        .values("campaign_id")
        .annotate(
            n=Count("pk", filter=_REGULAR_ANSWER)
            + Count("pk", filter=_GOLD_ANSWER)
            + Count("pk", filter=_REPEAT_ANSWER)
        )
        .values_list("campaign_id", "n")
        if annotating
        else ()
    )
    wanted = dict(
        Comparison.objects.filter(campaign_id__in=reading, role=Comparison.Role.REGULAR)
        .values("campaign_id")
        .annotate(n=Sum("wanted"))
        .values_list("campaign_id", "n")
        if reading
        else ()
    )
    done = dict(
        Assignment.objects.filter(_COUNTED_JUDGMENT, campaign_id__in=reading)
        .values("campaign_id")
        .annotate(n=Count("pk"))
        .values_list("campaign_id", "n")
        if reading
        else ()
    )
    for row in rows:
        pk = row["campaign"].pk
        gate_state = row.pop("gate_state")
        if row["role"] == Membership.Role.ANNOTATOR:
            row["mine"] = {"judged": judged.get(pk, 0), "gate_state": gate_state}
        else:
            row["progress"] = {
                "judgments_done": done.get(pk, 0),
                "judgments_wanted": wanted.get(pk) or 0,
            }
    return rows


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


def image_import_list(*, campaign: Campaign) -> QuerySet[ImageImport]:
    """The campaign's image imports, newest first."""
    return ImageImport.objects.filter(campaign=campaign).order_by("-created_at", "-id")
