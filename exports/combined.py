"""Several campaigns, one dataset: which campaigns combine, and how their judgments merge.

A team that runs a campaign per model release exports them together. The campaigns must be
of one kind (and k) and share the exported criterion with the same answer options.
Their judgments are read campaign by campaign, in the order given, and rewritten so the
writers see one campaign:

- Prompts with the same text are one prompt (the first campaign's), so splits, which are
  drawn by prompt text, stay prompt-disjoint across all of them, and the per-prompt
  columns (`num_example_per_prompt`, the `*_unique` splits) count a prompt once.
- A pair of images that recurs (same prompt text, same image contents by sha256) is one
  pair: judgments of a later copy become judgments of the first copy (its image uids), so
  the dataset holds the pair once with all its labels. A rater who judged the pair in an
  earlier campaign gets the later judgment marked a repeat, which the training formats
  always leave out (counted under `repeat`).
- Raters are told apart per campaign by their membership's pseudonymous key, so each
  campaign's gate states apply to its own judgments.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field

from annotate.models import Campaign, ComparisonImage, Judgment, Membership, Prompt
from exports.models import Export
from exports.selectors import JudgmentRow, Rater
from pickwise.errors import ApplicationError

COMBINED_FORMATS = (Export.Format.PICKAPIC, Export.Format.IMAGE_PREFERENCE)
MAX_CAMPAIGNS = 20

SAME_CAMPAIGN_TWICE = "Campaign {slug!r} is listed twice; list each campaign once."
TOO_MANY_CAMPAIGNS = "At most {limit} campaigns go into one export; {count} were given."
FORMAT_NOT_COMBINED = (
    "Several campaigns export as pickapic or image_preference; {format!r} exports one campaign."
)
KINDS_DIFFER = (
    "Campaign {slug!r} is a {kind} campaign (k={k}) and {first!r} a {first_kind} one "
    "(k={first_k}); only campaigns of one kind and k combine."
)
CRITERION_MISSING = "Campaign {slug!r} has no criterion {criterion!r}; it has: {keys}."
CRITERION_DIFFERS = (
    "Criterion {criterion!r} allows different answers in {slug!r} and {first!r} "
    "(allow_tie, allow_both_bad); only campaigns that ask it the same way combine."
)


def _criterion(campaign: Campaign, key: str) -> dict | None:
    return next((c for c in campaign.criteria if c["key"] == key), None)


def campaigns_check_combinable(*, campaigns: list[Campaign], criterion: str, format: str) -> None:
    """Raise ApplicationError (code "incompatible") unless the campaigns export together."""
    if len(campaigns) > MAX_CAMPAIGNS:
        raise ApplicationError(
            TOO_MANY_CAMPAIGNS.format(limit=MAX_CAMPAIGNS, count=len(campaigns)), code="invalid"
        )
    seen: set[int] = set()
    for campaign in campaigns:
        if campaign.pk in seen:
            raise ApplicationError(SAME_CAMPAIGN_TWICE.format(slug=campaign.slug), code="invalid")
        seen.add(campaign.pk)
    if format not in COMBINED_FORMATS:
        raise ApplicationError(FORMAT_NOT_COMBINED.format(format=format), code="incompatible")
    first = campaigns[0]
    wanted = _criterion(first, criterion)
    for campaign in campaigns[1:]:
        if (campaign.kind, campaign.k) != (first.kind, first.k):
            raise ApplicationError(
                KINDS_DIFFER.format(
                    slug=campaign.slug,
                    kind=campaign.kind,
                    k=campaign.k,
                    first=first.slug,
                    first_kind=first.kind,
                    first_k=first.k,
                ),
                code="incompatible",
            )
        found = _criterion(campaign, criterion)
        if found is None:
            keys = ", ".join(c["key"] for c in campaign.criteria)
            raise ApplicationError(
                CRITERION_MISSING.format(slug=campaign.slug, criterion=criterion, keys=keys),
                code="incompatible",
            )
        options = ("allow_tie", "allow_both_bad")
        if any(bool(found.get(o)) != bool(wanted.get(o)) for o in options):
            raise ApplicationError(
                CRITERION_DIFFERS.format(criterion=criterion, slug=campaign.slug, first=first.slug),
                code="incompatible",
            )


@dataclass
class Combination:
    """How the judgments of several campaigns are rewritten into one campaign's."""

    campaigns: list[Campaign]
    rater_keys: dict[tuple[int, int], int]  # (campaign id, user id) -> membership rater key
    gate_states: dict[int, str]  # rater key -> gate state
    prompt_of: dict[int, int]  # prompt id -> the first prompt with its text
    comparison_of: dict[int, int]  # later copy of a pair -> its first copy
    uid_of: dict[str, str]  # image uid in a later copy -> the first copy's image uid
    repeats: set[int] = field(default_factory=set)  # judgment ids of a rater's second look

    def raters(self) -> dict[int, Rater]:
        return {key: Rater(key, state) for key, state in self.gate_states.items()}

    def counts(self) -> dict:
        return {
            "campaigns": len(self.campaigns),
            "pairs_merged": len(self.comparison_of),
            "prompts_merged": sum(1 for p, first in self.prompt_of.items() if p != first),
            "repeats_across_campaigns": len(self.repeats),
        }

    def rows(self, campaign: Campaign, batches: Iterator[list], audit: bool) -> Iterator[list]:
        """A campaign's judgment batches with its rows rewritten (see the module docstring)."""
        for batch in batches:
            if audit:
                yield [(self._row(campaign.pk, row), extra) for row, extra in batch]
            else:
                yield [self._row(campaign.pk, row) for row in batch]

    def _row(self, campaign_id: int, row: JudgmentRow) -> JudgmentRow:
        first = self.comparison_of.get(row.comparison_id)
        return row._replace(
            # 0 for a judgment without a membership: no rater, left out by the policy.
            annotator_id=self.rater_keys.get((campaign_id, row.annotator_id), 0),
            comparison_id=first or row.comparison_id,
            prompt_id=self.prompt_of.get(row.prompt_id, row.prompt_id),
            answer=row.answer if first is None else self._translated(row.answer),
            is_repeat=row.is_repeat or row.id in self.repeats,
        )

    def _translated(self, answer):
        if isinstance(answer, str):
            return self.uid_of.get(answer, answer)  # "tie" and "both_bad" stay
        if isinstance(answer, list):
            return [[self.uid_of.get(u, u) for u in tier] for tier in answer]
        return answer


def combination_build(*, campaigns: list[Campaign], last_id: int) -> Combination:
    """Work out the merged prompts and pairs and the raters of `campaigns` (in that order)."""
    position = {c.pk: i for i, c in enumerate(campaigns)}
    ids = list(position)

    rater_keys, gate_states = {}, {}
    for campaign_id, user_id, key, state in Membership.objects.filter(
        campaign_id__in=ids
    ).values_list("campaign_id", "user_id", "rater_key", "gate_state"):
        rater_keys[(campaign_id, user_id)] = key
        gate_states[key] = state

    prompt_of: dict[int, int] = {}
    first_of_text: dict[str, int] = {}
    prompts = Prompt.objects.filter(campaign_id__in=ids).values_list("id", "campaign_id", "text")
    for prompt_id, _campaign, text in sorted(prompts, key=lambda p: (position[p[1]], p[0])):
        prompt_of[prompt_id] = first_of_text.setdefault(text, prompt_id)

    slots: dict[int, list[tuple[str, str]]] = {}
    where: dict[int, tuple[int, int]] = {}  # comparison -> (campaign position, prompt)
    for comparison_id, campaign_id, prompt_id, uid, sha256 in ComparisonImage.objects.filter(
        comparison__campaign_id__in=ids
    ).values_list(
        "comparison_id",
        "comparison__campaign_id",
        "comparison__prompt_id",
        "image__uid",
        "image__sha256",
    ):
        slots.setdefault(comparison_id, []).append((sha256, str(uid)))
        where[comparison_id] = (position[campaign_id], prompt_of.get(prompt_id, prompt_id))

    comparison_of: dict[int, int] = {}
    uid_of: dict[str, str] = {}
    first_of_pair: dict[tuple, int] = {}
    for comparison_id in sorted(slots, key=lambda c: (where[c][0], c)):
        images = dict(slots[comparison_id])
        if len(images) != len(slots[comparison_id]):
            continue  # two copies of one image in a comparison: no clear correspondence
        key = (where[comparison_id][1], frozenset(images))
        first = first_of_pair.setdefault(key, comparison_id)
        if first != comparison_id:
            comparison_of[comparison_id] = first
            first_images = dict(slots[first])
            uid_of.update({uid: first_images[sha] for sha, uid in images.items()})

    combination = Combination(
        campaigns=campaigns,
        rater_keys=rater_keys,
        gate_states=gate_states,
        prompt_of=prompt_of,
        comparison_of=comparison_of,
        uid_of=uid_of,
    )
    if comparison_of:
        members = set(comparison_of) | set(comparison_of.values())
        seen: set[tuple[int, int]] = set()
        judgments = Judgment.objects.filter(
            comparison_id__in=sorted(members), id__lte=last_id
        ).values_list("id", "annotator_id", "comparison_id", "campaign_id")
        for judgment_id, user_id, comparison_id, _campaign in sorted(
            judgments, key=lambda j: (position[j[3]], j[0])
        ):
            pair = (user_id, comparison_of.get(comparison_id, comparison_id))
            if pair in seen:
                combination.repeats.add(judgment_id)
            seen.add(pair)
    return combination


def export_campaigns(*, export: Export) -> list[Campaign]:
    """The campaigns an export reads, in its order."""
    by_id = Campaign.objects.in_bulk(export.campaign_ids)
    return [by_id[campaign_id] for campaign_id in export.campaign_ids]
