"""How much gold a campaign gets, and warnings when it is too small for its quality policy.

Gold scales with the campaign: 2% of the regular comparisons, at least MIN_GOLD so that new
annotators can qualify, but never more than a quarter of the regular ones, so that gold stays
at most about a fifth of an annotator's work. A tiny campaign therefore gets little or no gold;
campaign_warnings says so in plain words instead of quietly blocking its annotators.
"""

import math
from dataclasses import dataclass

from annotate.models import Campaign, Comparison, Membership

MIN_GOLD = 15
GOLD_SHARE = 0.02
# Gold at most a quarter of the regular comparisons: a fifth of all the work.
MAX_GOLD_PER_REGULAR = 0.25
# Above this share of tasks, gold crowds out the work that is the point of the campaign.
MAX_GOLD_RATE = 0.2

TOO_SMALL_TO_QUALIFY = (
    "With {regular} comparisons the campaign gets {gold} gold item(s), but qualifying takes at "
    "least {needed} right answers: new annotators would stay in qualification. Add prompts "
    "(about {prompts_needed} comparisons are enough), or set the qualification size to 0."
)
GOLD_RATE_TOO_HIGH = (
    "{percent}% of each annotator's tasks would be gold checks; above about 20% little real "
    "work is left."
)
TOO_FEW_ANNOTATORS = (
    "Each comparison wants {overlap} judgments from different annotators, but the campaign has "
    "{annotators} annotator(s): add members or lower the overlap."
)
NO_COMPARISONS = "There is nothing to judge yet: add prompts, then generate or import their images."


def gold_count_for(*, regular_comparisons: int) -> int:
    """The number of gold items a campaign with this many regular comparisons gets."""
    wanted = max(MIN_GOLD, math.ceil(GOLD_SHARE * regular_comparisons))
    return min(wanted, math.floor(MAX_GOLD_PER_REGULAR * regular_comparisons))


def gold_needed_to_qualify(*, policy: dict) -> int:
    """Right answers in a row that take a new annotator through the gold SPRT."""
    per_right = math.log(policy["sprt_p1"] / policy["sprt_p0"])
    return math.ceil(policy["sprt_bound"] / per_right) if per_right > 0 else 0


@dataclass(frozen=True)
class CampaignSize:
    regular: int
    gold: int
    annotators: int


def campaign_size(*, campaign: Campaign) -> CampaignSize:
    comparisons = Comparison.objects.filter(campaign=campaign)
    return CampaignSize(
        regular=comparisons.filter(role=Comparison.Role.REGULAR).count(),
        gold=comparisons.filter(role=Comparison.Role.GOLD).count(),
        annotators=Membership.objects.filter(
            campaign=campaign, role=Membership.Role.ANNOTATOR
        ).count(),
    )


def campaign_warnings(*, campaign: Campaign, size: CampaignSize | None = None) -> list[str]:
    """Plain-words warnings about the campaign's size against its gold and qualification."""
    from annotate.quality.rules import policy_for

    size = size or campaign_size(campaign=campaign)
    warnings = []
    if size.regular == 0:
        warnings.append(NO_COMPARISONS)
    if campaign.qualification_size > 0 and size.regular:
        needed = gold_needed_to_qualify(policy=policy_for(campaign))
        gold = max(size.gold, gold_count_for(regular_comparisons=size.regular))
        if gold < needed:
            warnings.append(
                TOO_SMALL_TO_QUALIFY.format(
                    regular=size.regular,
                    gold=gold,
                    needed=needed,
                    prompts_needed=math.ceil(MIN_GOLD / MAX_GOLD_PER_REGULAR),
                )
            )
    if campaign.gold_rate > MAX_GOLD_RATE:
        warnings.append(GOLD_RATE_TOO_HIGH.format(percent=round(100 * campaign.gold_rate)))
    wanted = campaign.initial_wanted()
    if size.annotators < wanted and campaign.status != Campaign.Status.CLOSED:
        warnings.append(TOO_FEW_ANNOTATORS.format(overlap=wanted, annotators=size.annotators))
    return warnings
