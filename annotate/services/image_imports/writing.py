"""Writing a checked import: prompts, images and imported raters' judgments."""

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterator

from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.db.models import Count, Max

from annotate.criteria import TIE
from annotate.models import (
    Assignment,
    Campaign,
    Comparison,
    Image,
    Judgment,
    Membership,
    Prompt,
    image_upload_path,
)
from annotate.services.campaigns import membership_set
from annotate.services.comparisons import (
    comparison_key,
    comparisons_build_for_prompt,
    comparisons_create,
)
from annotate.services.image_imports.messages import FILE_CHANGED, FILE_GONE
from annotate.services.image_imports.plan import (
    PROGRESS_EVERY,
    ImageImportResult,
    ImportPlan,
    Progress,
    Unreadable,
    chunks,
    rater_username,
    tell,
)
from annotate.services.images import image_create
from annotate.services.prompts import PromptRow, prompts_add
from pickwise.errors import ApplicationError


def write_plan(
    *, plan: ImportPlan, build: bool, written: list[str], progress: Progress
) -> ImageImportResult:
    """Write the plan; the caller holds the transaction. New storage names go to `written`."""
    campaign = plan.campaign
    result = ImageImportResult()
    texts = list(plan.prompts)
    prompts: dict[str, Prompt] = {}
    for chunk in chunks(texts):
        added = prompts_add(
            campaign=campaign, rows=[PromptRow(line=plan.prompts[t], text=t) for t in chunk]
        )
        result.prompts_created += added.created
        result.prompts_existing += added.existing
        prompts.update(
            (p.text, p) for p in Prompt.objects.filter(campaign=campaign, text__in=chunk)
        )

    images: dict[str, Image] = {}
    for done, (key, data) in enumerate(_reread(plan), start=1):
        item = plan.items[key]
        if hashlib.sha256(data).hexdigest() != item.sha256:
            raise ApplicationError(FILE_CHANGED.format(name=item.ref), code="changed")
        name = image_upload_path(Image(sha256=item.sha256), f"x.{item.extension}")
        new_file = not default_storage.exists(name)
        image, created = image_create(
            prompt=prompts[item.prompt],
            data=data,
            source=Image.Source.IMPORTED,
            model_name=item.model_name,
            seed=item.seed,
        )
        if created and new_file:
            written.append(image.file.name)
        if created and item.wanted_uid is not None and item.wanted_uid not in plan.taken_uids:
            # Keep the source's uid so its rows can be traced; unique in the database.
            Image.objects.filter(pk=image.pk).update(uid=item.wanted_uid)
            image.uid = item.wanted_uid
        result.images_created += created
        result.images_existing += not created
        images[key] = image
        if done % PROGRESS_EVERY == 0:
            tell(progress, f"stored {done}/{len(plan.items)} images")

    if plan.labels:
        _write_labels(plan=plan, images=images, result=result, progress=progress)
    if build:
        touched = {image.prompt_id for image in images.values()}
        for prompt in prompts.values():
            if prompt.pk in touched:
                built = comparisons_build_for_prompt(campaign=campaign, prompt=prompt)
                result.comparisons_created += len(built)
    return result


def _reread(plan: ImportPlan) -> Iterator[tuple[str, bytes]]:
    """The plan's images again; one that cannot be read now has changed since the check."""
    try:
        yield from plan.read()
    except Unreadable as exc:
        raise ApplicationError(FILE_GONE.format(problem=exc.args[0]), code="changed") from None


def _raters(*, campaign: Campaign, user_ids: set[str], result: ImageImportResult) -> dict:
    """One inactive account and active annotator membership per imported rater id."""
    users = {}
    model = get_user_model()
    for user_id in sorted(user_ids):
        user, created = model.objects.get_or_create(
            username=rater_username(campaign, user_id), defaults={"is_active": False}
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
            result.raters_created += 1
        membership_set(
            campaign=campaign,
            user=user,
            role=Membership.Role.ANNOTATOR,
            gate_state=Membership.Gate.ACTIVE,
        )
        users[user_id] = user
    return users


def _pair_comparisons(
    *,
    campaign: Campaign,
    pairs: set[tuple[int, int]],
    images: dict[int, Image],
    result: ImageImportResult,
) -> dict[tuple[int, int], Comparison]:
    """The regular comparison for each image pair, created where missing."""
    by_prompt: dict[int, list[tuple[Image, Image]]] = defaultdict(list)
    for a, b in sorted(pairs):
        by_prompt[images[a].prompt_id].append((images[a], images[b]))
    for groups in by_prompt.values():
        created = comparisons_create(campaign=campaign, prompt=groups[0][0].prompt, groups=groups)
        result.comparisons_created += len(created)
    keys = {comparison_key(pair): pair for pair in pairs}
    found: dict[tuple[int, int], Comparison] = {}
    for chunk in chunks(list(keys)):
        for comparison in Comparison.objects.filter(campaign=campaign, key__in=chunk):
            found[keys[comparison.key]] = comparison
    return found


def _write_labels(
    *, plan: ImportPlan, images: dict[str, Image], result: ImageImportResult, progress: Progress
) -> None:
    """Each labelled row becomes a submitted assignment and its judgment by an imported rater.

    A rater's second judgment of the same pair is recorded as a repeat of their previous
    one (it measures consistency and does not count toward overlap). Rows already imported
    are recognised by count: the n-th judgment of a pair by a rater is the n-th such row.
    """
    campaign = plan.campaign
    criterion = campaign.criteria[0]["key"]
    users = _raters(campaign=campaign, user_ids={r.user_id for r in plan.labels}, result=result)
    by_pk = {image.pk: image for image in images.values()}
    pair_of = [tuple(sorted((images[r.image_0].pk, images[r.image_1].pk))) for r in plan.labels]
    comparisons = _pair_comparisons(
        campaign=campaign, pairs=set(pair_of), images=by_pk, result=result
    )
    comparison_ids = [c.pk for c in comparisons.values()]
    user_pks = [u.pk for u in users.values()]
    before: Counter = Counter()
    last: dict[tuple[int, int], int] = {}
    for chunk in chunks(comparison_ids):
        rows = (
            Judgment.objects.filter(comparison_id__in=chunk, annotator_id__in=user_pks)
            .values("comparison_id", "annotator_id")
            .annotate(n=Count("id"), last=Max("id"))
        )
        for row in rows:
            group = (row["comparison_id"], row["annotator_id"])
            before[group], last[group] = row["n"], row["last"]

    memberships = {
        m.user_id: m
        for m in Membership.objects.select_for_update().filter(
            campaign=campaign, user_id__in=user_pks
        )
    }
    seen: Counter = Counter()
    counted: Counter = Counter()  # new judgments toward each comparison's overlap
    for done, (label, pair) in enumerate(zip(plan.labels, pair_of, strict=True), start=1):
        comparison = comparisons[pair]
        user = users[label.user_id]
        group = (comparison.pk, user.pk)
        seen[group] += 1
        if seen[group] <= before[group]:
            result.judgments_existing += 1
            continue
        first, second = images[label.image_0], images[label.image_1]
        presented = [str(first.uid), str(second.uid)]
        answer = TIE if label.winner is None else presented[label.winner]
        repeat_of = last.get(group)
        membership = memberships[user.pk]
        assignment = Assignment.objects.create(
            campaign=campaign,
            comparison=comparison,
            annotator=user,
            presented=presented,
            issued_at=label.created_at,
            expires_at=label.created_at,
            closed_at=label.created_at,
            state=Assignment.State.SUBMITTED,
            is_repeat=repeat_of is not None,
            repeat_of_id=repeat_of,
            sequence=membership.issued,
        )
        membership.issued += 1
        judgment = Judgment.objects.create(
            assignment=assignment,
            campaign=campaign,
            comparison=comparison,
            annotator=user,
            answers={criterion: answer},
            presented=presented,
            server_ms=0,
            is_repeat=repeat_of is not None,
        )
        # created_at is set on insert; the source's time is what exports and quality need.
        Judgment.objects.filter(pk=judgment.pk).update(created_at=label.created_at)
        last[group] = judgment.pk
        if repeat_of is None:
            counted[comparison.pk] += 1
        result.judgments_created += 1
        if done % PROGRESS_EVERY == 0:
            tell(progress, f"stored {done}/{len(plan.labels)} judgments")
    for membership in memberships.values():
        Membership.objects.filter(pk=membership.pk).update(issued=membership.issued)
    _count_judgments(counted=counted, overlap=campaign.overlap)


def _count_judgments(*, counted: Counter, overlap: int) -> None:
    """Move `done` by the new judgments and keep wanted >= done + in_flight (a DB check)."""
    ids = sorted(counted)
    for chunk in chunks(ids):
        for comparison in Comparison.objects.select_for_update().filter(pk__in=chunk):
            done = comparison.done + counted[comparison.pk]
            wanted = max(overlap, done + comparison.in_flight)
            status = comparison.status
            if status != Comparison.Status.RETIRED:
                full = done + comparison.in_flight >= wanted
                status = Comparison.Status.FULL if full else Comparison.Status.OPEN
            Comparison.objects.filter(pk=comparison.pk).update(
                done=done, wanted=wanted, status=status
            )
