"""Quality writes: evaluate a rater, admin overrides, the full recompute."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import connection, connections, transaction
from django.db.models import Sum
from django.utils import timezone

from annotate.models import Campaign, Membership
from annotate.quality.active import active_sampling_refresh
from annotate.quality.agreement import (
    PAIR_DOMAIN,
    Patterns,
    agreement_for,
    rank_domain,
)
from annotate.quality.encoding import DERIVED, PAIR, RANK, speed_median_ms
from annotate.quality.gating import gate_transition
from annotate.quality.models import AgreementSnapshot, GateEvent, RaterStats
from annotate.quality.pair_columns import columns_patterns, pair_columns_fetch
from annotate.quality.rater_stats import (
    SPEED_BUCKETS,
    checks_fetch,
    primary_criterion,
    stats_compute,
    stats_write,
)
from annotate.quality.rules import (
    CLEARED,
    REASONS,
    Verdict,
    policy_for,
    rules_evaluate,
    stats_figures,
)
from pickwise.errors import ApplicationError

OVERRIDE_NEEDS_REASON = "Give a reason for the override (1 to 500 characters)."
OVERRIDE_BAD_STATE = "state must be one of: {states}."
OVERRIDE_NOT_ANNOTATOR = "Only annotators in this campaign have a gate state."
OVERRIDE_SAME_STATE = "The rater is already {state}."
MEDIAN_CACHE_SECONDS = 60


def _blocked_ids(campaign: Campaign):
    return Membership.objects.filter(campaign=campaign, gate_state=Membership.Gate.BLOCKED).values(
        "user_id"
    )


def campaign_chance_agreement(*, campaign: Campaign) -> float | None:
    """P_e: the sum of squared label shares over the counted raters' first-criterion labels."""
    totals = (
        RaterStats.objects.filter(campaign=campaign)
        .exclude(annotator_id__in=_blocked_ids(campaign))
        .aggregate(lo=Sum("n_lo"), tie=Sum("n_tie"), hi=Sum("n_hi"))
    )
    counts = [totals[k] or 0 for k in ("lo", "tie", "hi")]
    n = sum(counts)
    if n == 0:
        return None
    return sum((c / n) ** 2 for c in counts)


def campaign_median_ms(*, campaign: Campaign, fresh: bool = False) -> float | None:
    """The campaign's median judgment time from the raters' histograms (cached a minute)."""
    key = f"quality:median-ms:{campaign.pk}"
    if not fresh and (cached := cache.get(key)) is not None:
        return cached or None
    hist = [0] * SPEED_BUCKETS
    for row in (
        RaterStats.objects.filter(campaign=campaign)
        .exclude(annotator_id__in=_blocked_ids(campaign))
        .values_list("speed_hist", flat=True)
    ):
        for index, count in enumerate(row or []):
            hist[index] += count
    median = speed_median_ms(hist)
    cache.set(key, median or 0, MEDIAN_CACHE_SECONDS)
    return median


def _next_state(state: str, verdict: Verdict) -> tuple[str, str, str] | None:
    """(to_state, rule, reason) for an automatic move, or None."""
    if verdict.block:
        return Membership.Gate.BLOCKED, verdict.block[0], REASONS[verdict.block[0]]
    if verdict.warn and state == Membership.Gate.ACTIVE:
        return Membership.Gate.WARNED, verdict.warn[0], REASONS[verdict.warn[0]]
    if not verdict.warn and state == Membership.Gate.WARNED:
        return Membership.Gate.ACTIVE, "cleared", CLEARED
    return None


@transaction.atomic
def rater_evaluate(
    *,
    campaign: Campaign,
    user: AbstractBaseUser,
    p_e: float | None = None,
    median_ms: float | None = None,
    stats: RaterStats | None = None,
) -> Verdict | None:
    """Apply the block and warn rules to an active or warned rater; None when not due.

    Locks the membership; reads the stats without a lock and writes its flags last, so no
    stats row is held while a block takes comparison locks.
    """
    membership = Membership.objects.select_for_update().get(campaign=campaign, user=user)
    if membership.gate_state not in (Membership.Gate.ACTIVE, Membership.Gate.WARNED):
        return None
    if stats is None:
        stats = RaterStats.objects.filter(campaign=campaign, annotator=user).first()
    if stats is None or stats.manual_hold:
        return None
    if p_e is None:
        p_e = campaign_chance_agreement(campaign=campaign)
    if median_ms is None:
        median_ms = campaign_median_ms(campaign=campaign)
    verdict = rules_evaluate(
        stats=stats, policy=policy_for(campaign), p_e=p_e, campaign_median_ms=median_ms
    )
    move = _next_state(membership.gate_state, verdict)
    if move is not None:
        to_state, rule, reason = move
        gate_transition(
            membership=membership,
            to_state=to_state,
            rule=rule,
            reason=reason,
            figures={**verdict.figures, "flags": verdict.flags},
        )
    RaterStats.objects.filter(pk=stats.pk).update(flags=verdict.flags, evaluated_at=timezone.now())
    return verdict


@transaction.atomic
def rater_gate_override(
    *,
    campaign: Campaign,
    user: AbstractBaseUser,
    state: str,
    reason: str,
    by: AbstractBaseUser,
    hold: bool = True,
) -> GateEvent:
    """An admin sets a rater's gate state, with a reason; logged as a GateEvent.

    Blocking excludes the rater's judgments and reopens their comparisons; unblocking
    restores what still fits. With `hold` (the default) automatic rules leave the rater
    alone afterwards; `hold=False` hands them back to the rules.
    """
    states = [choice for choice, _ in Membership.Gate.choices]
    if state not in states:
        raise ApplicationError(OVERRIDE_BAD_STATE.format(states=", ".join(states)), code="invalid")
    reason = (reason or "").strip()
    if not reason or len(reason) > 500:
        raise ApplicationError(OVERRIDE_NEEDS_REASON, code="invalid")
    membership = Membership.objects.select_for_update().filter(campaign=campaign, user=user).first()
    if membership is None or membership.role != Membership.Role.ANNOTATOR:
        raise ApplicationError(OVERRIDE_NOT_ANNOTATOR, code="not_annotator", status=404)
    if membership.gate_state == state:
        raise ApplicationError(
            OVERRIDE_SAME_STATE.format(state=state), code="same_state", status=409
        )
    stats, _ = RaterStats.objects.get_or_create(
        campaign=campaign, annotator=user, defaults={"speed_hist": [0] * SPEED_BUCKETS}
    )
    event = gate_transition(
        membership=membership,
        to_state=state,
        rule="admin",
        reason=reason,
        figures={**stats_figures(stats, policy=policy_for(campaign)), "hold": hold},
        by=by,
    )
    RaterStats.objects.filter(pk=stats.pk).update(manual_hold=hold)
    return event


def agreement_kinds(campaign: Campaign) -> list[tuple[int, list[int]]]:
    """(unit kind, value domain) pairs that apply to the campaign."""
    if campaign.kind == Campaign.Kind.PAIRWISE:
        return [(PAIR, PAIR_DOMAIN)]
    return [(RANK, rank_domain(campaign.k)), (DERIVED, PAIR_DOMAIN)]


def agreement_snapshot(
    *, campaign: Campaign, known: dict[tuple[str, int], Patterns] | None = None
) -> list[AgreementSnapshot]:
    """Alpha for every criterion and unit kind, stored as history. `known` holds the
    patterns of (criterion, kind) pairs the caller counted already; the rest are read."""
    policy = policy_for(campaign)
    known = known or {}
    rows = []
    for criterion in campaign.criteria:
        for kind, domain in agreement_kinds(campaign):
            figures = agreement_for(
                campaign_id=campaign.pk,
                criterion=criterion["key"],
                kind=kind,
                domain=domain,
                replicates=int(policy["bootstrap_replicates"]),
                patterns=known.get((criterion["key"], kind)),
            )
            rows.append(
                AgreementSnapshot(
                    campaign=campaign,
                    criterion=criterion["key"],
                    kind=kind,
                    units=figures["units"],
                    ratings=figures["ratings"],
                    alpha_nominal=figures["nominal"]["alpha"],
                    alpha_nominal_low=figures["nominal"]["low"],
                    alpha_nominal_high=figures["nominal"]["high"],
                    alpha_ordinal=figures["ordinal"]["alpha"],
                    alpha_ordinal_low=figures["ordinal"]["low"],
                    alpha_ordinal_high=figures["ordinal"]["high"],
                )
            )
    return AgreementSnapshot.objects.bulk_create(rows)


def gating_sweep(*, campaign: Campaign) -> int:
    """Apply the rules to every active or warned rater after a recompute; returns moves."""
    p_e = campaign_chance_agreement(campaign=campaign)
    median_ms = campaign_median_ms(campaign=campaign, fresh=True)
    policy = policy_for(campaign)
    stats_by_user = {s.annotator_id: s for s in RaterStats.objects.filter(campaign=campaign)}
    moves = 0
    for membership in Membership.objects.filter(
        campaign=campaign, gate_state__in=[Membership.Gate.ACTIVE, Membership.Gate.WARNED]
    ).select_related("user"):
        stats = stats_by_user.get(membership.user_id)
        if stats is None or stats.manual_hold:
            continue
        verdict = rules_evaluate(stats=stats, policy=policy, p_e=p_e, campaign_median_ms=median_ms)
        if _next_state(membership.gate_state, verdict) is not None:
            # Re-checked under the membership lock by rater_evaluate.
            rater_evaluate(
                campaign=campaign, user=membership.user, p_e=p_e, median_ms=median_ms, stats=stats
            )
            moves += 1
        elif stats.flags != verdict.flags:
            RaterStats.objects.filter(pk=stats.pk).update(flags=verdict.flags)
    return moves


def _timed(call):
    started = time.perf_counter()
    try:
        return call(), time.perf_counter() - started
    finally:
        if threading.current_thread() is not threading.main_thread():
            connections.close_all()  # this worker thread's own connections only


def _side_by_side(*calls):
    """Run independent reads at once on PostgreSQL (each thread has its own connection).

    Inside an open transaction (tests, a caller's atomic block) other connections would not
    see its rows, so the calls then run one after the other.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return [_timed(call) for call in calls]
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return [future.result() for future in [pool.submit(_timed, call) for call in calls]]


def quality_recompute(
    *, campaign: Campaign, evaluate: bool = True, now: datetime | None = None
) -> dict:
    """Rebuild every rater's counters and the agreement figures from the ratings.

    Returns the seconds each step took. The counters equal the incremental ones exactly.
    A pairwise campaign's ratings are read once, as columns: the counters and the primary
    criterion's alpha both come from that read, beside which the gold and repeat reads run.
    """
    now = now or timezone.now()
    timings = {}
    started = time.perf_counter()
    known = {}
    if campaign.kind == Campaign.Kind.PAIRWISE:
        primary = primary_criterion(campaign)
        (columns, _), (checks, _) = _side_by_side(
            lambda: pair_columns_fetch(campaign_id=campaign.pk, criterion=primary),
            lambda: checks_fetch(campaign=campaign),
        )
        timings["read_s"] = time.perf_counter() - started
        mark = time.perf_counter()
        computed = stats_compute(campaign=campaign, columns=columns, checks=checks)
        known[(primary, PAIR)] = columns_patterns(columns)
    else:
        timings["read_s"] = 0.0
        mark = time.perf_counter()
        computed = stats_compute(campaign=campaign)
    timings["stats_compute_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    agreement_snapshot(campaign=campaign, known=known)
    timings["agreement_s"] = time.perf_counter() - mark
    mark = time.perf_counter()
    with transaction.atomic():
        timings["raters"] = stats_write(campaign=campaign, computed=computed, now=now)
    timings["stats_write_s"] = time.perf_counter() - mark
    if evaluate:
        mark = time.perf_counter()
        timings["gate_moves"] = gating_sweep(campaign=campaign)
        timings["gating_s"] = time.perf_counter() - mark
    if campaign.active_sampling:
        mark = time.perf_counter()
        timings["priorities_written"] = active_sampling_refresh(campaign=campaign)["written"]
        timings["active_sampling_s"] = time.perf_counter() - mark
    timings["total_s"] = time.perf_counter() - started
    return timings
