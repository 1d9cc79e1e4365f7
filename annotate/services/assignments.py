"""The assignment engine: which comparison an annotator judges next.

This is the hot path. `assignment_next` runs in one transaction and takes two row locks:
the annotator's membership (so one annotator's concurrent requests queue instead of
double-booking) and the chosen comparison (`FOR UPDATE SKIP LOCKED`, so annotators never
wait on each other). On SQLite, IMMEDIATE transactions serialise writers instead.
"""

import random
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import Case, Count, Exists, F, OuterRef, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.db.models.lookups import GreaterThanOrEqual
from django.utils import timezone

from annotate.models import Assignment, Campaign, Comparison, Judgment, Membership
from annotate.quality.models import RaterStats
from annotate.quality.rules import gold_rate_for
from annotate.selectors import TaskContent, task_content, task_content_from_rows
from pickwise.errors import ApplicationError

BLOCKED = "You can no longer take tasks in this campaign: {reason}"
CAMPAIGN_NOT_ACTIVE = "This campaign is not open for annotation (status: {status})."
TOO_MANY_OPEN = "You hold {count} open tasks already; submit or skip one first."
NOT_OPEN = "This task is {state} and cannot be skipped."
NOT_AN_ANNOTATOR = "You are no longer an annotator in this campaign."
# A repeat looks at least this many tasks back, so the annotator does not remember it.
REPEAT_MIN_DISTANCE = 20

SEED_REFUSED = (
    "The assignment engine's draws can be seeded only in a simulation "
    "(settings.PICKWISE_SIMULATION); in service they must stay unpredictable."
)

# Every random draw of the engine comes from this one generator: whether the next task is
# gold, a repeat or regular, which gold item and which earlier judgment to repeat, and the
# order of the images on screen. In service it is the operating system's generator, so an
# annotator cannot predict which task is gold or a repeat (a seeded Mersenne Twister could
# be replayed from a guessed seed, or recovered from enough observed screen orders, and a
# rater who knows which task is checked answers only those with care). A simulation seeds
# it (assignment_draws_seed) so that a run replays exactly.
_rng: random.Random = random.SystemRandom()


def assignment_draws_seed(*, seed: int | None) -> None:
    """Seed the engine's draws (None: back to the unpredictable generator).

    Only where settings.PICKWISE_SIMULATION is set (bench/ scripts and tests); it is a
    code-only setting, never read from the environment, so no deployment can turn it on.
    """
    global _rng
    if seed is None:
        _rng = random.SystemRandom()
        return
    if not getattr(settings, "PICKWISE_SIMULATION", False):
        raise ImproperlyConfigured(SEED_REFUSED)
    _rng = random.Random(seed)


def membership_ensure_annotator(membership: Membership | None) -> Membership:
    """The membership, if it still makes its user an annotator; 403 if it was removed or
    its role changed since the task was issued (a stale page or a resent answer)."""
    if membership is None or membership.role != Membership.Role.ANNOTATOR:
        raise ApplicationError(NOT_AN_ANNOTATOR, code="not_annotator", status=403)
    return membership


def _ensure_may_take_tasks(*, campaign: Campaign, membership: Membership) -> None:
    if membership.gate_state == Membership.Gate.BLOCKED:
        reason = membership.gate_reason or "your answers did not meet the quality bar."
        raise ApplicationError(BLOCKED.format(reason=reason), code="blocked", status=403)
    if campaign.status != Campaign.Status.ACTIVE:
        raise ApplicationError(
            CAMPAIGN_NOT_ACTIVE.format(status=campaign.status),
            code="campaign_not_active",
            status=409,
        )


def comparison_release_slots(comparison_id: int, count: int) -> None:
    """Give `count` in-flight slots back; a full comparison opens again."""
    Comparison.objects.filter(pk=comparison_id).update(
        in_flight=F("in_flight") - count,
        status=Case(
            When(status=Comparison.Status.RETIRED, then=Value(Comparison.Status.RETIRED)),
            default=Value(Comparison.Status.OPEN),
        ),
    )


def assignments_expire_overdue(
    *, now: datetime | None = None, campaign: Campaign | None = None, limit: int = 500
) -> int:
    """Expire open assignments past their lease and give their slots back.

    Skips rows another transaction holds (a submit in progress wins). Comparison rows are
    updated in id order so two concurrent sweeps cannot deadlock.
    """
    now = now or timezone.now()
    # No savepoint when nested: on the hot path this runs inside assignment_next's transaction.
    with transaction.atomic(savepoint=False):
        overdue = Assignment.objects.filter(state=Assignment.State.OPEN, expires_at__lte=now)
        if campaign is not None:
            overdue = overdue.filter(campaign=campaign)
        rows = list(
            overdue.select_for_update(skip_locked=True)
            .order_by("expires_at")
            .values_list("id", "comparison_id", "is_repeat", "is_gold")[:limit]
        )
        if not rows:
            return 0
        Assignment.objects.filter(id__in=[r[0] for r in rows]).update(
            state=Assignment.State.EXPIRED, closed_at=now
        )
        released: dict[int, int] = {}
        for _, comparison_id, is_repeat, is_gold in rows:
            if not (is_repeat or is_gold):
                released[comparison_id] = released.get(comparison_id, 0) + 1
        for comparison_id in sorted(released):
            comparison_release_slots(comparison_id, released[comparison_id])
        return len(rows)


# PostgreSQL: pick, take the slot, count the task on the membership and read what the task
# shows, in one statement (one round trip instead of four). `picked` asks what _pick_regular
# asks, over the comparison_open_queue index; `taken` updates the row it locked; `issued`
# runs only when a comparison was taken (data-modifying WITH clauses always run).
# `priority` is 0 everywhere unless the campaign samples actively (annotate/quality/active.py
# ranks its model pairs in a task); the index leads with it, so the order costs nothing.
# "Never met" is NOT IN, which PostgreSQL answers from a hash of the annotator's comparisons:
# the fullest open comparisons are mostly the ones this annotator just judged, and NOT EXISTS
# probed the assignment table once for each of them (80 ms after a thousand tasks; 5 ms so).
_PICK_AND_TAKE_SQL = """
WITH picked AS (
    SELECT c.id FROM annotate_comparison c
    WHERE c.campaign_id = %(campaign)s AND c.status = 'open' AND c.role = 'regular'
      AND c.id NOT IN (
          SELECT a.comparison_id FROM annotate_assignment a
          WHERE a.annotator_id = %(annotator)s AND a.campaign_id = %(campaign)s
            AND NOT a.is_repeat
      )
    ORDER BY c.priority DESC, (c.done + c.in_flight) DESC, c.id
    LIMIT 1
    FOR UPDATE {skip_locked}
), taken AS (
    UPDATE annotate_comparison c
    SET in_flight = c.in_flight + 1,
        status = CASE WHEN c.done + c.in_flight + 1 >= c.wanted THEN 'full' ELSE 'open' END
    FROM picked WHERE c.id = picked.id
    RETURNING c.id, c.prompt_id
), issued AS (
    UPDATE annotate_membership SET issued = issued + 1
    WHERE id = %(membership)s AND EXISTS (SELECT 1 FROM taken)
)
SELECT taken.id, p.text, i.uid, i.file, i.width, i.height
FROM taken
JOIN annotate_prompt p ON p.id = taken.prompt_id
JOIN annotate_comparisonimage ci ON ci.comparison_id = taken.id
JOIN annotate_image i ON i.id = ci.image_id
ORDER BY ci.slot
"""


def _pick_and_take_postgresql(
    *, campaign: Campaign, annotator: AbstractBaseUser, membership: Membership, skip_locked: bool
) -> tuple[int, TaskContent] | None:
    sql = _PICK_AND_TAKE_SQL.format(skip_locked="SKIP LOCKED" if skip_locked else "")
    with connection.cursor() as cursor:
        cursor.execute(
            sql, {"campaign": campaign.pk, "annotator": annotator.pk, "membership": membership.pk}
        )
        rows = cursor.fetchall()
    if not rows:
        return None
    content = task_content_from_rows(prompt_text=rows[0][1], rows=[row[2:] for row in rows])
    return rows[0][0], content


def _pick_regular(*, campaign: Campaign, annotator: AbstractBaseUser) -> Comparison | None:
    """Lock the open comparison this annotator has never met with the highest priority, then
    the fullest, skipping locked rows."""
    met = Assignment.objects.filter(comparison=OuterRef("pk"), annotator=annotator, is_repeat=False)
    candidates = (
        Comparison.objects.filter(
            campaign=campaign, status=Comparison.Status.OPEN, role=Comparison.Role.REGULAR
        )
        .filter(~Exists(met))
        .order_by("-priority", (F("done") + F("in_flight")).desc(), "id")
        .only("id", "prompt_id")
    )
    candidate = candidates.select_for_update(skip_locked=True).first()
    if candidate is None:
        # The last open rows may only be locked for a moment (a submit or another next in
        # flight): SKIP LOCKED would then say "nothing left" while a slot is still free. Wait
        # for the lock instead; PostgreSQL re-checks the row once it is released.
        candidate = candidates.select_for_update().first()
    if candidate is None:
        return None
    # One more in flight; the row is locked, so the status computed from it is exact.
    Comparison.objects.filter(pk=candidate.pk).update(
        in_flight=F("in_flight") + 1,
        status=Case(
            When(
                GreaterThanOrEqual(F("done") + F("in_flight") + 1, F("wanted")),
                then=Value(Comparison.Status.FULL),
            ),
            default=Value(Comparison.Status.OPEN),
        ),
    )
    return candidate


def _take_regular(
    *, campaign: Campaign, annotator: AbstractBaseUser, membership: Membership
) -> tuple[int, TaskContent] | None:
    """Take a slot of a regular comparison: (comparison id, content), None if none is left.

    Also counts the task on the membership (`issued`) when it takes one.
    """
    if connection.vendor == "postgresql":
        taken = _pick_and_take_postgresql(
            campaign=campaign, annotator=annotator, membership=membership, skip_locked=True
        )
        if taken is None:
            # As in _pick_regular: wait for a briefly locked last row rather than give up.
            taken = _pick_and_take_postgresql(
                campaign=campaign, annotator=annotator, membership=membership, skip_locked=False
            )
        return taken
    comparison = _pick_regular(campaign=campaign, annotator=annotator)
    if comparison is None:
        return None
    Membership.objects.filter(pk=membership.pk).update(issued=F("issued") + 1)
    return comparison.pk, task_content(comparison_id=comparison.pk)


def _pick_gold(*, campaign: Campaign, annotator: AbstractBaseUser) -> int | None:
    """A gold comparison this annotator has not met, drawn from _rng (None: none left).

    The candidates come back in id order and _rng picks one, rather than the database's
    random order, so that a seeded simulation replays; a campaign holds a few hundred gold
    items at most, so reading their ids costs what ORDER BY random() did.
    """
    met = Assignment.objects.filter(comparison=OuterRef("pk"), annotator=annotator, is_repeat=False)
    candidates = list(
        Comparison.objects.filter(campaign=campaign, role=Comparison.Role.GOLD)
        .exclude(status=Comparison.Status.RETIRED)
        .filter(~Exists(met))
        .order_by("id")
        .values_list("id", flat=True)
    )
    return _rng.choice(candidates) if candidates else None


def _pick_repeat(*, campaign: Campaign, membership: Membership) -> Judgment | None:
    """One of the annotator's own regular judgments, far enough back, not repeated yet."""
    cutoff = membership.issued - REPEAT_MIN_DISTANCE
    if cutoff < 0:
        return None
    candidates = Judgment.objects.filter(
        campaign=campaign,
        annotator_id=membership.user_id,
        is_gold=False,
        is_repeat=False,
        excluded=False,
        assignment__sequence__lte=cutoff,
    ).filter(~Exists(Assignment.objects.filter(repeat_of=OuterRef("pk"))))
    # Drawn from _rng over the ids in order (not ORDER BY random()), so a seeded simulation
    # replays; the second query runs only on a repeat (repeat_rate of the tasks).
    ids = list(candidates.order_by("id").values_list("id", flat=True))
    if not ids:
        return None
    return Judgment.objects.only("id", "comparison_id", "presented").get(pk=_rng.choice(ids))


def _choose_kind(*, campaign: Campaign, membership: Membership) -> str:
    if membership.gate_state == Membership.Gate.QUALIFYING:
        return "gold"
    draw = _rng.random()
    gold_rate = campaign.gold_rate
    if gold_rate > 0:
        # Raised for a while after qualifying (quality.rules.gold_rate_for). The figures it
        # needs came with the membership lock (assignment_next); None: no stats row yet.
        gold_rate = gold_rate_for(
            campaign=campaign,
            gold_passed_at=membership.gold_passed_at,
            post_gold_correct=membership.post_gold_correct or 0,
            post_gold_wrong=membership.post_gold_wrong or 0,
            drift_check_at=membership.drift_check_at or 0,
        )
    if draw < gold_rate:
        return "gold"
    if draw < gold_rate + campaign.repeat_rate:
        return "repeat"
    return "regular"


# PostgreSQL: the membership lock of assignment_next as written SQL. The ORM query below
# asks the same, but building and compiling its five subqueries took about 1.7 ms of CPU on
# every next, a fifth of the request's (bench/RESULTS.md, "Annotation loop").
_MEMBERSHIP_FOR_UPDATE_SQL = """
SELECT m.*, s.gold_passed_at, s.post_gold_correct, s.post_gold_wrong, s.drift_check_at,
    (SELECT count(*) FROM annotate_assignment a
     WHERE a.annotator_id = %(annotator)s AND a.campaign_id = %(campaign)s
       AND a.state = %(open)s AND a.expires_at > %(now)s) AS open_count,
    (SELECT a.id FROM annotate_assignment a
     WHERE a.annotator_id = %(annotator)s AND a.campaign_id = %(campaign)s
       AND a.state = %(open)s AND a.expires_at > %(now)s AND a.id <> ALL(%(exclude)s)
     ORDER BY a.id LIMIT 1) AS reusable_id
FROM annotate_membership m
LEFT JOIN annotate_raterstats s ON s.campaign_id = m.campaign_id AND s.annotator_id = m.user_id
WHERE m.campaign_id = %(campaign)s AND m.user_id = %(annotator)s
FOR UPDATE OF m
"""


def _membership_for_update(
    *,
    campaign: Campaign,
    annotator: AbstractBaseUser,
    exclude_ids: tuple[int, ...],
    now: datetime,
) -> Membership | None:
    """The annotator's membership, row-locked (so one annotator's concurrent requests queue
    instead of double-booking), with their open tasks: how many (`open_count`) and the first
    one not in `exclude_ids` (`reusable_id`); and the gold figures _choose_kind reads from
    the rater's stats row (None without one). Needs a transaction."""
    if connection.vendor == "postgresql":
        rows = list(
            Membership.objects.raw(
                _MEMBERSHIP_FOR_UPDATE_SQL,
                {
                    "campaign": campaign.pk,
                    "annotator": annotator.pk,
                    "open": Assignment.State.OPEN,
                    "now": now,
                    "exclude": [int(pk) for pk in exclude_ids],
                },
            )
        )
        return rows[0] if rows else None
    open_now = Assignment.objects.filter(
        annotator=annotator, campaign=campaign, state=Assignment.State.OPEN, expires_at__gt=now
    ).order_by()
    stats = RaterStats.objects.filter(campaign=campaign, annotator=annotator)
    return (
        Membership.objects.select_for_update()
        .annotate(
            **{
                name: Subquery(stats.values(name)[:1])
                for name in (
                    "gold_passed_at",
                    "post_gold_correct",
                    "post_gold_wrong",
                    "drift_check_at",
                )
            },
            open_count=Coalesce(
                Subquery(open_now.values("annotator").annotate(n=Count("pk")).values("n")), 0
            ),
            reusable_id=Subquery(
                open_now.exclude(pk__in=exclude_ids).order_by("id").values("pk")[:1]
            ),
        )
        .filter(campaign=campaign, user=annotator)
        .first()
    )


def _commit_without_waiting_for_the_disk() -> None:
    """PostgreSQL: this transaction's COMMIT answers before its WAL is on disk.

    Waiting for the flush was the largest wait of the annotation loop's backends (bench/
    RESULTS.md, "Annotation loop"). What a database crash can then lose is the tasks issued
    in its last fraction of a second (at most 3 x wal_writer_delay, 600 ms by default): the
    assignment, its in-flight slot and the membership's count vanish together, and the
    annotator's submit of such a task answers 404, so they ask for another. Nothing answered
    is lost: a submit commits synchronously, which flushes every earlier commit with it.
    Only as the outermost transaction, so a caller's own writes keep their durability.
    """
    if connection.vendor == "postgresql" and len(connection.atomic_blocks) == 1:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


@transaction.atomic
def assignment_next(
    *,
    campaign: Campaign,
    annotator: AbstractBaseUser,
    exclude_ids: tuple[int, ...] = (),
    now: datetime | None = None,
) -> Assignment | None:
    """The annotator's next task: their open one if any (not in `exclude_ids`), else a new one.

    `exclude_ids` lets a client that shows one task reserve the next in advance. Returns
    None when nothing is left for this annotator. Needs a transaction (takes row locks).
    """
    now = now or timezone.now()
    membership = _membership_for_update(
        campaign=campaign, annotator=annotator, exclude_ids=exclude_ids, now=now
    )
    membership_ensure_annotator(membership)
    _ensure_may_take_tasks(campaign=campaign, membership=membership)
    open_count = membership.open_count
    if membership.reusable_id is not None:
        # Read again, skipping the row if a submit or skip holds it: that claim locks the
        # assignment before the membership, so waiting here could deadlock, and a task being
        # answered must not be shown as open. Committed meanwhile: no longer open either.
        reused = (
            Assignment.objects.select_for_update(skip_locked=True)
            .filter(pk=membership.reusable_id, state=Assignment.State.OPEN, expires_at__gt=now)
            .first()
        )
        if reused is not None:
            return reused
        open_count -= 1
    if open_count >= settings.PICKWISE_MAX_OPEN_ASSIGNMENTS:
        raise ApplicationError(
            TOO_MANY_OPEN.format(count=open_count), code="too_many_open", status=409
        )

    kind = _choose_kind(campaign=campaign, membership=membership)
    comparison_id, content, repeat_of = None, None, None
    if kind == "gold":
        comparison_id = _pick_gold(campaign=campaign, annotator=annotator)
        if comparison_id is not None:
            content = task_content(comparison_id=comparison_id)
    elif kind == "repeat":
        repeat_of = _pick_repeat(campaign=campaign, membership=membership)
    if comparison_id is None and repeat_of is None:
        kind = "regular"
        taken = _take_regular(campaign=campaign, annotator=annotator, membership=membership)
        # Nothing open: overdue leases may be holding the last slots. Expire them (the
        # periodic sweep may not have run yet) and look once more. Off the common path.
        if taken is None and assignments_expire_overdue(now=now, campaign=campaign, limit=50):
            taken = _take_regular(campaign=campaign, annotator=annotator, membership=membership)
        if taken is None:
            return None
        comparison_id, content = taken
    else:
        Membership.objects.filter(pk=membership.pk).update(issued=F("issued") + 1)

    if repeat_of is not None:
        # The same images with the sides swapped: a consistent rater gives the same answer.
        comparison_id = repeat_of.comparison_id
        presented = list(reversed(repeat_of.presented))
    else:
        presented = list(content.uids)
        _rng.shuffle(presented)

    _commit_without_waiting_for_the_disk()
    assignment = Assignment.objects.create(
        campaign=campaign,
        comparison_id=comparison_id,
        annotator=annotator,
        presented=presented,
        issued_at=now,
        expires_at=now + timedelta(seconds=campaign.lease_seconds),
        is_gold=kind == "gold",
        is_repeat=repeat_of is not None,
        repeat_of=repeat_of,
        sequence=membership.issued,
    )
    # What the task shows, as read while picking: serving it needs no further query.
    assignment.task_content = content
    return assignment


@transaction.atomic
def assignment_expire(*, assignment: Assignment, now: datetime | None = None) -> bool:
    """Expire one open assignment and give its slot back; False if it was not open."""
    now = now or timezone.now()
    updated = Assignment.objects.filter(pk=assignment.pk, state=Assignment.State.OPEN).update(
        state=Assignment.State.EXPIRED, closed_at=now
    )
    if updated and not (assignment.is_gold or assignment.is_repeat):
        comparison_release_slots(assignment.comparison_id, 1)
    return bool(updated)


@transaction.atomic
def assignment_skip(*, assignment: Assignment, now: datetime | None = None) -> Assignment:
    """Hand the task back unanswered. The annotator is not offered this comparison again."""
    now = now or timezone.now()
    assignment = Assignment.objects.select_for_update().get(pk=assignment.pk)
    membership_ensure_annotator(
        Membership.objects.filter(
            campaign_id=assignment.campaign_id, user_id=assignment.annotator_id
        ).first()
    )
    if assignment.state != Assignment.State.OPEN:
        raise ApplicationError(NOT_OPEN.format(state=assignment.state), code="not_open", status=409)
    assignment.state = Assignment.State.SKIPPED
    assignment.closed_at = now
    assignment.save(update_fields=["state", "closed_at"])
    if not (assignment.is_gold or assignment.is_repeat):
        comparison_release_slots(assignment.comparison_id, 1)
    return assignment
