"""Writing a checked import: prompts, images and imported raters' judgments."""

import hashlib
import uuid
from collections import Counter
from collections.abc import Iterator

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db.models import Count, Max
from django.utils import timezone

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
from annotate.services.campaigns import rater_key_new
from annotate.services.comparisons import (
    comparison_key,
    comparisons_build_for_prompts,
    comparisons_create_many,
)
from annotate.services.image_imports.messages import FILE_CHANGED, FILE_GONE
from annotate.services.image_imports.plan import (
    CHUNK,
    WRITING,
    ImageImportResult,
    ImageItem,
    ImportPlan,
    LabelRow,
    Progress,
    Unreadable,
    chunks,
    rater_username,
    tell,
)
from annotate.services.prompts import PromptRow, prompts_add
from pickwise.errors import ApplicationError


def write_plan(
    *, plan: ImportPlan, build: bool, written: list[str], progress: Progress
) -> ImageImportResult:
    """Write the plan; the caller holds the transaction. New storage names go to `written`.

    Every step works in chunks of CHUNK rows with a fixed number of queries per chunk:
    prompts and images are looked up and inserted in bulk, never one by one.
    """
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

    images = _write_images(
        plan=plan, prompts=prompts, written=written, result=result, progress=progress
    )
    if plan.labels:
        _write_labels(plan=plan, images=images, result=result, progress=progress)
    if build:
        touched = {image.prompt_id for image in images.values()}
        built = [p for p in prompts.values() if p.pk in touched]
        for chunk in chunks(built):
            created = comparisons_build_for_prompts(campaign=campaign, prompts=chunk)
            result.comparisons_created += len(created)
    return result


def _existing_images(*, plan: ImportPlan, prompts: dict[str, Prompt]) -> dict[str, Image]:
    """The plan's items already imported (same prompt, same bytes), by item key."""
    found: dict[str, Image] = {}
    for chunk in chunks(list(plan.items)):
        wanted = {(prompts[plan.items[k].prompt].pk, plan.items[k].sha256): k for k in chunk}
        rows = Image.objects.filter(
            prompt_id__in={p for p, _ in wanted},
            sha256__in={s for _, s in wanted},
            source=Image.Source.IMPORTED,
        )
        for image in rows:
            key = wanted.get((image.prompt_id, image.sha256))
            if key is not None:
                found[key] = image
    return found


def _write_images(
    *,
    plan: ImportPlan,
    prompts: dict[str, Prompt],
    written: list[str],
    result: ImageImportResult,
    progress: Progress,
) -> dict[str, Image]:
    """Store each new image's file, then insert the rows CHUNK at a time.

    Files go to storage one by one as they are re-read (bytes are never held for a whole
    chunk); rows go in with one INSERT per chunk. The unique (prompt, sha256) of imported
    images makes a concurrent import of the same file skip the row instead of failing.
    """
    images = _existing_images(plan=plan, prompts=prompts)
    result.images_existing = len(images)
    pending: dict[str, Image] = {}
    total = len(plan.items)
    for done, (key, data) in enumerate(_reread(plan), start=1):
        item = plan.items[key]
        if hashlib.sha256(data).hexdigest() != item.sha256:
            raise ApplicationError(FILE_CHANGED.format(name=item.ref), code="changed")
        if key not in images:
            pending[key] = _new_image(item=item, prompt=prompts[item.prompt], data=data, plan=plan)
            if not default_storage.exists(pending[key].file.name):
                pending[key].file.name = default_storage.save(
                    pending[key].file.name, ContentFile(data)
                )
                written.append(pending[key].file.name)
        if len(pending) >= CHUNK:
            _insert_images(pending=pending, images=images, result=result)
        if done % CHUNK == 0:
            tell(progress, WRITING, done, total, "images")
    _insert_images(pending=pending, images=images, result=result)
    return images


def _new_image(*, item: ImageItem, prompt: Prompt, data: bytes, plan: ImportPlan) -> Image:
    # Keep the source's uid so its rows can be traced, unless another image has it.
    keep = item.wanted_uid is not None and item.wanted_uid not in plan.taken_uids
    image = Image(
        uid=item.wanted_uid if keep else uuid.uuid4(),
        prompt=prompt,
        sha256=item.sha256,
        width=item.width,
        height=item.height,
        model_name=item.model_name,
        seed=item.seed,
        source=Image.Source.IMPORTED,
    )
    image.file.name = image_upload_path(image, f"x.{item.extension}")
    return image


def _insert_images(
    *, pending: dict[str, Image], images: dict[str, Image], result: ImageImportResult
) -> None:
    """Insert the pending rows (two queries) and move them, as stored, into `images`."""
    while pending:
        Image.objects.bulk_create(pending.values(), ignore_conflicts=True)
        stored = {
            (image.prompt_id, image.sha256): image
            for image in Image.objects.filter(
                prompt_id__in={i.prompt_id for i in pending.values()},
                sha256__in={i.sha256 for i in pending.values()},
                source=Image.Source.IMPORTED,
            )
        }
        retry: dict[str, Image] = {}
        for key, image in pending.items():
            row = stored.get((image.prompt_id, image.sha256))
            if row is None:
                # Skipped on a uid another import took meanwhile: insert again with a new one.
                image.uid = uuid.uuid4()
                retry[key] = image
                continue
            images[key] = row
            ours = row.uid == image.uid  # else a concurrent import stored it first
            result.images_created += ours
            result.images_existing += not ours
        pending.clear()
        pending.update(retry)


def _reread(plan: ImportPlan) -> Iterator[tuple[str, bytes]]:
    """The plan's images again; one that cannot be read now has changed since the check."""
    try:
        yield from plan.read()
    except Unreadable as exc:
        raise ApplicationError(FILE_GONE.format(problem=exc.args[0]), code="changed") from None


def _raters(*, campaign: Campaign, user_ids: set[str], result: ImageImportResult) -> dict:
    """One inactive account and active annotator membership per imported rater id.

    Looked up and created CHUNK at a time. The caller holds the transaction.
    """
    model = get_user_model()
    users = {}
    for chunk in chunks(sorted(user_ids)):
        names = {rater_username(campaign, u): u for u in chunk}
        found = {u.username: u for u in model.objects.filter(username__in=list(names))}
        new = [
            model(username=name, is_active=False, password=make_password(None))
            for name in names
            if name not in found
        ]
        model.objects.bulk_create(new)
        result.raters_created += len(new)
        found.update((user.username, user) for user in new)
        users.update((names[name], user) for name, user in found.items())
        _raters_join(campaign=campaign, users=list(found.values()))
    return users


def _raters_join(*, campaign: Campaign, users: list) -> None:
    """What membership_set does for each imported rater, in three queries."""
    ids = [user.pk for user in users]
    members = Membership.objects.filter(campaign=campaign, user_id__in=ids)
    roles = dict(members.values_list("user_id", "role"))
    other = [pk for pk, role in roles.items() if role != Membership.Role.ANNOTATOR]
    if other:
        Membership.objects.filter(campaign=campaign, user_id__in=other).update(
            role=Membership.Role.ANNOTATOR
        )
    now = timezone.now()
    Membership.objects.bulk_create(
        Membership(
            campaign=campaign,
            user_id=pk,
            role=Membership.Role.ANNOTATOR,
            gate_state=Membership.Gate.ACTIVE,
            gate_changed_at=now,
            rater_key=rater_key_new(),
        )
        for pk in ids
        if pk not in roles
    )


def _pair_comparisons(
    *,
    campaign: Campaign,
    pairs: set[tuple[int, int]],
    images: dict[int, Image],
    result: ImageImportResult,
) -> dict[tuple[int, int], Comparison]:
    """The regular comparison for each image pair, created where missing."""
    ordered = [(images[a], images[b]) for a, b in sorted(pairs)]
    for chunk in chunks(ordered):
        created = comparisons_create_many(campaign=campaign, groups=chunk)
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
    batch = _LabelBatch(campaign=campaign, criterion=criterion, last=last)
    for done, (label, pair) in enumerate(zip(plan.labels, pair_of, strict=True), start=1):
        comparison = comparisons[pair]
        user = users[label.user_id]
        group = (comparison.pk, user.pk)
        seen[group] += 1
        if seen[group] <= before[group]:
            result.judgments_existing += 1
            continue
        if group in batch.groups or len(batch.rows) >= CHUNK:
            # A repeat names the judgment before it, which must have its id first.
            batch.flush()
        membership = memberships[user.pk]
        repeat_of = batch.add(
            label=label,
            comparison=comparison,
            user=user,
            images=(images[label.image_0], images[label.image_1]),
            sequence=membership.issued,
        )
        membership.issued += 1
        if repeat_of is None:
            counted[comparison.pk] += 1
        result.judgments_created += 1
        if done % CHUNK == 0:
            tell(progress, WRITING, done, len(plan.labels), "judgments")
    batch.flush()
    Membership.objects.bulk_update(memberships.values(), ["issued"], batch_size=CHUNK)
    _count_judgments(counted=counted, overlap=campaign.initial_wanted())


class _LabelBatch:
    """Labelled rows waiting to become assignments and judgments: four queries a flush."""

    def __init__(self, *, campaign: Campaign, criterion: str, last: dict) -> None:
        self.campaign = campaign
        self.criterion = criterion
        self.last = last  # (comparison, annotator) -> their latest judgment's id
        self.rows: list[tuple[tuple[int, int], LabelRow, Assignment, Judgment]] = []
        self.groups: set[tuple[int, int]] = set()

    def add(self, *, label, comparison, user, images, sequence: int) -> int | None:
        """Queue one row; returns the judgment it repeats, if any."""
        group = (comparison.pk, user.pk)
        presented = [str(images[0].uid), str(images[1].uid)]
        answer = TIE if label.winner is None else presented[label.winner]
        repeat_of = self.last.get(group)
        assignment = Assignment(
            campaign=self.campaign,
            comparison=comparison,
            annotator=user,
            presented=presented,
            issued_at=label.created_at,
            expires_at=label.created_at,
            closed_at=label.created_at,
            state=Assignment.State.SUBMITTED,
            is_repeat=repeat_of is not None,
            repeat_of_id=repeat_of,
            sequence=sequence,
        )
        judgment = Judgment(
            campaign=self.campaign,
            comparison=comparison,
            annotator=user,
            answers={self.criterion: answer},
            presented=presented,
            server_ms=0,
            is_repeat=repeat_of is not None,
        )
        self.rows.append((group, label, assignment, judgment))
        self.groups.add(group)
        return repeat_of

    def flush(self) -> None:
        if not self.rows:
            return
        Assignment.objects.bulk_create([assignment for _, _, assignment, _ in self.rows])
        judgments = []
        for _, _, assignment, judgment in self.rows:
            judgment.assignment = assignment
            judgments.append(judgment)
        Judgment.objects.bulk_create(judgments)
        # created_at is set on insert; the source's time is what exports and quality need.
        for _, label, _, judgment in self.rows:
            judgment.created_at = label.created_at
        Judgment.objects.bulk_update(judgments, ["created_at"])
        for group, _, _, judgment in self.rows:
            self.last[group] = judgment.pk
        self.rows.clear()
        self.groups.clear()


def _count_judgments(*, counted: Counter, overlap: int) -> None:
    """Move `done` by the new judgments and keep wanted >= done + in_flight (a DB check).

    Locks the comparisons (select_for_update) so a concurrent submit cannot move the counters
    between the read and the write; two queries a chunk.
    """
    ids = sorted(counted)
    for chunk in chunks(ids):
        changed = []
        for comparison in Comparison.objects.select_for_update().filter(pk__in=chunk):
            comparison.done += counted[comparison.pk]
            comparison.wanted = max(overlap, comparison.done + comparison.in_flight)
            if comparison.status != Comparison.Status.RETIRED:
                full = comparison.done + comparison.in_flight >= comparison.wanted
                comparison.status = Comparison.Status.FULL if full else Comparison.Status.OPEN
            changed.append(comparison)
        Comparison.objects.bulk_update(changed, ["done", "wanted", "status"])
