"""Quality reads for the API, the dashboard pages and the qc_report command."""

import math

from django.db.models import QuerySet

from annotate.models import Campaign, Membership
from annotate.quality.agreement import (
    PAIR_DOMAIN,
    agreement_for,
    alpha_windows,
    unit_counts_by_completion,
)
from annotate.quality.encoding import DERIVED, PAIR, speed_median_ms
from annotate.quality.leaderboard import bradley_terry_leaderboard
from annotate.quality.models import GateEvent, RaterStats
from annotate.quality.rater_stats import primary_criterion
from annotate.quality.rules import (
    GOLD_COUNTERS,
    gold_window,
    gold_window_size,
    policy_for,
    recent_agreement,
    recent_median_ms,
    wilson,
)
from annotate.quality.services import agreement_kinds, campaign_chance_agreement


def agreement_summary(*, campaign: Campaign) -> list[dict]:
    """Per criterion (and unit kind): nominal alpha (headline) and ordinal alpha, each with
    a unit-bootstrap 95% interval. `status` is "ok", "too_few_units" (fewer units with two
    ratings than the policy's alpha_min_units; alphas are then null) or "undefined" (every
    value identical)."""
    policy = policy_for(campaign)
    return [
        agreement_for(
            campaign_id=campaign.pk,
            criterion=criterion["key"],
            kind=kind,
            domain=domain,
            replicates=int(policy["bootstrap_replicates"]),
            min_units=int(policy["alpha_min_units"]),
        )
        for criterion in campaign.criteria
        for kind, domain in agreement_kinds(campaign)
    ]


def agreement_timeline(
    *, campaign: Campaign, criterion: str | None = None, window: int | None = None
) -> list[dict]:
    """Nominal alpha over consecutive windows of units (in the order units were completed),
    each with its trailing baseline and `alert` set when it falls more than the policy's
    alpha_drop below it. For the dashboard's agreement-over-time chart."""
    policy = policy_for(campaign)
    criterion = criterion or primary_criterion(campaign)
    # Rankings are followed through their derived pairs, so both kinds read the same way.
    kind = PAIR if campaign.kind == Campaign.Kind.PAIRWISE else DERIVED
    domain = PAIR_DOMAIN
    counts, times = unit_counts_by_completion(
        campaign_id=campaign.pk, criterion=criterion, kind=kind, domain=domain
    )
    return alpha_windows(
        counts,
        times,
        domain,
        window=int(window or policy["alpha_window_units"]),
        drop=float(policy["alpha_drop"]),
        trailing=int(policy["alpha_trailing_windows"]),
    )


def quality_alerts(*, campaign: Campaign) -> list[dict]:
    """The latest window of each criterion when it dropped below its trailing baseline."""
    alerts = []
    for criterion in campaign.criteria:
        windows = agreement_timeline(campaign=campaign, criterion=criterion["key"])
        if windows and windows[-1]["alert"]:
            alerts.append({"criterion": criterion["key"], "kind": "alpha_drop", **windows[-1]})
    return alerts


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _gold_of(stats: RaterStats) -> dict:
    return {name: getattr(stats, name) for name in GOLD_COUNTERS}


def rater_table(*, campaign: Campaign) -> list[dict]:
    """One row per annotator: gate state and the figures the rules use, worst first."""
    stats = {s.annotator_id: s for s in RaterStats.objects.filter(campaign=campaign)}
    p_e = campaign_chance_agreement(campaign=campaign)
    policy = policy_for(campaign)
    z = policy["chance_z"]
    rows = []
    memberships = Membership.objects.filter(
        campaign=campaign, role=Membership.Role.ANNOTATOR
    ).select_related("user")
    for membership in memberships:
        s = stats.get(membership.user_id) or RaterStats(speed_hist=[])
        agreement = _rate(s.co_agree, s.co_pairs)
        rows.append(
            {
                "user_id": membership.user_id,
                "username": membership.user.get_username(),
                "rater_key": membership.rater_key,
                "gate_state": membership.gate_state,
                "gate_reason": membership.gate_reason,
                "gate_changed_at": membership.gate_changed_at,
                "judgments": s.judgments,
                "gold_correct": s.gold_correct,
                "gold_wrong": s.gold_wrong,
                "agreement": agreement,
                "agreement_upper": (
                    wilson(agreement * s.co_rated, s.co_rated, z)[1]
                    if agreement is not None
                    else None
                ),
                "chance_agreement": p_e,
                "left_share": (0.5 + s.pos_sum / s.pos_pairs / 2) if s.pos_pairs else None,
                "position_z": s.pos_sum / math.sqrt(s.pos_sumsq) if s.pos_sumsq else None,
                "tie_rate": _rate(s.tie_judgments, s.judgments),
                "both_bad_rate": _rate(s.both_bad, s.judgments),
                "repeats": s.repeats,
                "repeat_consistency": _rate(s.repeats_same, s.repeats),
                "median_seconds": (
                    m / 1000 if (m := speed_median_ms(list(s.speed_hist or []))) else None
                ),
                # The recent figures beside the lifetime ones (quality.rules).
                "recent_agreement": recent_agreement(s),
                "recent_median_seconds": (
                    m / 1000 if (m := recent_median_ms(s)) is not None else None
                ),
                "recent_gold_wrong": gold_window(_gold_of(s), policy=policy)[1],
                "recent_gold_n": min(s.gold_recent_n, gold_window_size(policy)),
                "drift_check": bool(s.drift_check_at),
                "kappa": s.kappa,
                "flags": list(s.flags or []),
                "manual_hold": s.manual_hold,
            }
        )
    order = {"blocked": 0, "warned": 1, "qualifying": 2, "active": 3}
    return sorted(
        rows, key=lambda r: (order.get(r["gate_state"], 9), -len(r["flags"]), r["user_id"])
    )


def gate_events_recent(*, campaign: Campaign, limit: int = 50) -> QuerySet[GateEvent]:
    """The latest gate transitions, newest first, with who decided."""
    return GateEvent.objects.filter(campaign=campaign).select_related("annotator", "by")[:limit]


def model_leaderboard(*, campaign: Campaign, criterion: str | None = None) -> list[dict]:
    """Bradley-Terry log-strengths per model (mean 0) with 95% bootstrap intervals."""
    return bradley_terry_leaderboard(
        campaign_id=campaign.pk, criterion=criterion or primary_criterion(campaign)
    )


def quality_summary(*, campaign: Campaign) -> dict:
    """Everything the quality API and dashboard show: alpha per criterion with intervals,
    the rater table, recent gate events, the model leaderboard and alerts."""
    return {
        "agreement": agreement_summary(campaign=campaign),
        "raters": rater_table(campaign=campaign),
        "gate_events": [
            {
                "id": e.pk,
                "user_id": e.annotator_id,
                "username": e.annotator.get_username(),
                "from_state": e.from_state,
                "to_state": e.to_state,
                "rule": e.rule,
                "reason": e.reason,
                "by": e.by.get_username() if e.by else None,
                "figures": e.figures,
                "created_at": e.created_at,
            }
            for e in gate_events_recent(campaign=campaign)
        ],
        "leaderboard": model_leaderboard(campaign=campaign),
        "alerts": quality_alerts(campaign=campaign),
        "policy": policy_for(campaign),
    }
