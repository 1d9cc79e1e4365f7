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

Which comparison the assignment engine serves next is unchanged: the open one with the most
judgments done or in flight (after the active-sampling priority, which is 0 unless that is on). With dynamic overlap the open comparisons past `min_raters` are
exactly the contested ones, so they come first: the one more judgment they want is the one
that can settle them, and serving them while the crowd is still there keeps the raters who
have not yet seen them from running out at the end. Which contested comparison comes first
does not change how many judgments the campaign uses, since each stops on its own votes.
"""

from collections import defaultdict

from django.db.models import OuterRef, Subquery

from annotate.models import Campaign, Comparison
from annotate.quality.encoding import HI, LO
from annotate.quality.models import RaterStats, Rating
from annotate.quality.posterior import overlap_wanted, rater_accuracy, settled

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
    Returns whether it is settled.
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
    Comparison.objects.filter(pk=comparison_id).update(
        wanted=wanted, status=status, settled=is_settled
    )
    return is_settled
