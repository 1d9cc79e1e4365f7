"""Dynamic overlap: how many judgments a comparison wants, decided on each submit.

A campaign with `dynamic_overlap` gives each regular comparison `min_raters` judgments
first. After every counted judgment the comparison's consensus is tested: on the campaign's
first criterion (the one rater statistics and the export's consensus use), every pair of its
images must have a leading side whose posterior probability, in the one-coin rater model
(annotate.quality.posterior), reaches the campaign's `confidence`. A rater's accuracy there
is their gold record under the Beta(4, 2) prior (0.75 with no gold yet): gold is
taste-independent, so a rater of minority taste keeps a full vote, and their dissent asks
for another rater instead of being outweighed. Ties and "both bad" say nothing about which
image is better.

Settled: the comparison wants no more than it has done or in flight. Not settled: it wants
one judgment more than it has done, up to `max_raters`; so a contested comparison draws one
rater at a time and stops at the first judgment that settles it.

Which comparison the assignment engine serves next: the open one with the highest
`Comparison.priority`, then the fullest. Under dynamic overlap (without active sampling,
which owns the priority when on) each submit writes there what the comparison's next judgment
is worth (annotate.quality.posterior.judgment_worth: the expected gain in the chance that its
consensus is right, per judgment, under a model in which raters who split make a close pair
likely), and a new comparison starts at the worth of its first judgment (fresh_priority). So
the judgment served is the one worth most: first judgments before further ones, then a fresh
split before raters who agree but have not yet reached the confidence, and before a pair
split many times over, on which one more rater changes little. bench/overlap_order.py
measures the order: the same accuracy at the end, more part-way through than serving the
fullest comparison first. The worth is a few array operations on one comparison's votes,
computed under the row lock the submit already holds; the engine's query and its index are
unchanged.
"""

from collections import defaultdict

from django.db.models import OuterRef, Subquery

from annotate.models import Campaign, Comparison
from annotate.quality.encoding import HI, LO
from annotate.quality.models import RaterStats, Rating
from annotate.quality.posterior import (
    judgment_worth,
    overlap_wanted,
    rater_accuracy,
    settled,
    worth_priority,
)

_SIGN = {LO: 1, HI: -1}  # the lower image id better: +1; ties and "both bad": no vote


def comparison_votes(
    *, campaign: Campaign, comparison_id: int
) -> dict[tuple[int, int], list[tuple[int, float]]]:
    """Per image pair (lo, hi) of the comparison: (sign, rater accuracy) of each counted
    judgment on the campaign's first criterion. One query."""
    stats = RaterStats.objects.filter(campaign=campaign, annotator=OuterRef("annotator_id"))
    rows = (
        Rating.objects.filter(
            comparison_id=comparison_id,
            criterion=campaign.criteria[0]["key"],
            kind__in=(Rating.Kind.PAIR, Rating.Kind.DERIVED),
            excluded=False,
        )
        .annotate(
            gold_correct=Subquery(stats.values("gold_correct")[:1]),
            gold_wrong=Subquery(stats.values("gold_wrong")[:1]),
        )
        .values_list("image_lo_id", "image_hi_id", "value", "gold_correct", "gold_wrong")
    )
    votes: dict[tuple[int, int], list[tuple[int, float]]] = defaultdict(list)
    for lo, hi, value, correct, wrong in rows:
        accuracy = rater_accuracy(correct or 0, wrong or 0)
        votes[(lo, hi)].append((_SIGN.get(value, 0), accuracy))
    return votes


def comparison_is_settled(
    *, votes: dict[tuple[int, int], list[tuple[int, float]]], confidence: float
) -> bool:
    """Every image pair's leading side reaches `confidence`; no votes: not settled."""
    return bool(votes) and all(settled(pair, confidence=confidence) for pair in votes.values())


def comparison_settle(*, campaign: Campaign, comparison_id: int) -> bool:
    """Test a dynamic-overlap comparison after a counted judgment and set what it wants.

    Needs the submit's transaction with the comparison row locked (the submit's counter
    update takes it), so the submits of one comparison settle it one after the other, each
    seeing the judgments before it. Keeps done + in_flight <= wanted <= max(max_raters,
    done + in_flight): judgments in flight when it settles still count; none is revoked.
    Writes the worth of its next judgment into priority (0 once it wants no more), unless
    the campaign samples actively. Returns whether it is settled.
    """
    comparison = (
        Comparison.objects.filter(pk=comparison_id)
        .values("done", "in_flight", "wanted", "status")
        .get()
    )
    done, used = comparison["done"], comparison["done"] + comparison["in_flight"]
    votes = comparison_votes(campaign=campaign, comparison_id=comparison_id)
    is_settled = done >= campaign.min_raters and comparison_is_settled(
        votes=votes, confidence=campaign.confidence
    )
    wanted = overlap_wanted(
        done=done,
        in_flight=comparison["in_flight"],
        wanted=comparison["wanted"],
        is_settled=is_settled,
        max_raters=campaign.max_raters,
    )
    status = comparison["status"]
    if status != Comparison.Status.RETIRED:
        status = Comparison.Status.FULL if used >= wanted else Comparison.Status.OPEN
    fields = {"wanted": wanted, "status": status, "settled": is_settled}
    if not campaign.active_sampling:
        fields["priority"] = next_priority(
            votes=votes, done=done, wanted=wanted, used=used, max_raters=campaign.max_raters
        )
    Comparison.objects.filter(pk=comparison_id).update(**fields)
    return is_settled


def next_priority(
    *,
    votes: dict[tuple[int, int], list[tuple[int, float]]],
    done: int,
    wanted: int,
    used: int,
    max_raters: int,
) -> int:
    """The assignment order's priority for a started comparison: the worth of its next
    judgment, summed over its image pairs (one judgment votes on each); 0 when it wants no
    more than it has. The next rater is taken to be as accurate as its raters so far."""
    if used >= wanted:
        return 0
    cast = [vote for pair in votes.values() for vote in pair]
    if not cast:  # nothing counted yet
        return 0
    accuracy = sum(max(0.5, a) for _, a in cast) / len(cast)
    worth = sum(
        judgment_worth(pair, remaining=max_raters - done, next_accuracy=accuracy)
        for pair in votes.values()
    )
    return worth_priority(worth)


def fresh_priority(campaign: Campaign) -> int:
    """The priority a regular comparison nobody has judged starts at: under dynamic overlap
    (without active sampling) the worth of its first judgment, by raters as accurate as a
    new one, over each of its image pairs; 0 otherwise. That is more than a started
    comparison's next judgment is worth, so every comparison gets its first judgment before
    any gets a further one (bench/overlap_order.py: more accurate part-way through, the same
    at the end)."""
    if not campaign.dynamic_overlap or campaign.active_sampling:
        return 0
    pairs = campaign.k * (campaign.k - 1) // 2  # k is 2 for a pairwise campaign
    worth = judgment_worth([], remaining=campaign.max_raters, next_accuracy=rater_accuracy(0, 0))
    return worth_priority(pairs * worth)
