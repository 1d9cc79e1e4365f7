"""Building comparisons from a prompt's images, per the campaign's design."""

import itertools
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence

from django.db import transaction

from annotate.models import Campaign, Comparison, ComparisonImage, Image, Prompt
from annotate.services.overlap import fresh_priority


def comparison_key(image_ids: Iterable[int]) -> str:
    return "-".join(str(i) for i in sorted(image_ids))


def _pairwise_groups(
    images: Sequence[Image], pairs_per_prompt: int | None, rng: random.Random
) -> list[tuple[Image, ...]]:
    """Pairs across generators; when every image has one model, all pairs among them."""
    pairs = [(a, b) for a, b in itertools.combinations(images, 2) if a.model_name != b.model_name]
    if not pairs:
        pairs = list(itertools.combinations(images, 2))
    if pairs_per_prompt is not None and len(pairs) > pairs_per_prompt:
        # Images drawn from the same seed differ by the model, not by the starting noise:
        # sample those pairs first, and fill up with the others.
        same = [(a, b) for a, b in pairs if a.seed is not None and a.seed == b.seed]
        if len(same) >= pairs_per_prompt:
            return rng.sample(same, pairs_per_prompt)
        others = [pair for pair in pairs if pair not in same]
        pairs = same + rng.sample(others, pairs_per_prompt - len(same))
    return pairs


def _ranking_groups(images: Sequence[Image], k: int, rng: random.Random) -> list[tuple[Image, ...]]:
    """Disjoint groups of k (shuffled); a remainder smaller than k is left out."""
    shuffled = list(images)
    rng.shuffle(shuffled)
    return [tuple(shuffled[i : i + k]) for i in range(0, len(shuffled) - k + 1, k)]


@transaction.atomic
def comparisons_create(
    *,
    campaign: Campaign,
    prompt: Prompt,
    groups: Iterable[Sequence[Image]],
    role: str = Comparison.Role.REGULAR,
    gold_answers: Sequence[dict | None] | None = None,
    gold_kind: str = "",
) -> list[Comparison]:
    """Create comparisons for the image groups not yet compared; images in canonical order."""
    groups = list(groups)
    answers = gold_answers if gold_answers is not None else [None] * len(groups)
    return _comparisons_insert(
        campaign=campaign,
        wanted=[(prompt.pk, group, answer) for group, answer in zip(groups, answers, strict=True)],
        role=role,
        gold_kind=gold_kind,
    )


def _comparisons_insert(
    *,
    campaign: Campaign,
    wanted: list[tuple[int, Sequence[Image], dict | None]],
    role: str,
    gold_kind: str = "",
) -> list[Comparison]:
    """Insert the (prompt id, images, gold answer) groups not compared yet: three queries."""
    groups = [sorted(group, key=lambda image: image.pk) for _, group, _ in wanted]
    keys = [comparison_key(image.pk for image in group) for group in groups]
    existing = set(
        Comparison.objects.filter(campaign=campaign, key__in=keys).values_list("key", flat=True)
    )
    regular = role == Comparison.Role.REGULAR
    overlap = campaign.initial_wanted() if regular else 0
    priority = fresh_priority(campaign) if regular else 0
    new: list[Comparison] = []
    new_groups: list[list[Image]] = []
    for (prompt_id, _, answer), key, group in zip(wanted, keys, groups, strict=True):
        if key in existing:
            continue
        existing.add(key)
        new.append(
            Comparison(
                campaign=campaign,
                prompt_id=prompt_id,
                key=key,
                role=role,
                gold_answer=answer,
                gold_kind=gold_kind,
                wanted=overlap,
                priority=priority,
            )
        )
        new_groups.append(group)
    Comparison.objects.bulk_create(new)
    ComparisonImage.objects.bulk_create(
        ComparisonImage(comparison=comparison, image=image, slot=slot)
        for comparison, group in zip(new, new_groups, strict=True)
        for slot, image in enumerate(group)
    )
    return new


@transaction.atomic
def comparisons_create_many(
    *, campaign: Campaign, groups: Sequence[Sequence[Image]]
) -> list[Comparison]:
    """comparisons_create for regular groups of images of any prompts, in three queries
    (the caller chunks); each group's prompt is its images' one."""
    wanted = [(group[0].prompt_id, group, None) for group in groups]
    return _comparisons_insert(campaign=campaign, wanted=wanted, role=Comparison.Role.REGULAR)


def _regular_groups(
    *, campaign: Campaign, prompt: Prompt, images: Sequence[Image]
) -> list[tuple[Image, ...]]:
    # The seed depends on the prompt, so rebuilding picks the same sampled pairs.
    rng = random.Random(f"{campaign.pk}:{prompt.pk}")
    if campaign.kind == Campaign.Kind.PAIRWISE:
        return _pairwise_groups(images, campaign.pairs_per_prompt, rng)
    return _ranking_groups(images, campaign.k, rng)


def comparisons_build_for_prompt(
    *, campaign: Campaign, prompt: Prompt, rng: random.Random | None = None
) -> list[Comparison]:
    """Build the campaign's regular comparisons for one prompt. Idempotent.

    The seed depends on the prompt, so rebuilding picks the same sampled pairs.
    """
    rng = rng or random.Random(f"{campaign.pk}:{prompt.pk}")
    images = list(
        prompt.images.exclude(source=Image.Source.DERIVED).order_by("id").only("id", "model_name")
    )
    if campaign.kind == Campaign.Kind.PAIRWISE:
        groups = _pairwise_groups(images, campaign.pairs_per_prompt, rng)
    else:
        groups = _ranking_groups(images, campaign.k, rng)
    return comparisons_create(campaign=campaign, prompt=prompt, groups=groups)


@transaction.atomic
def comparisons_build_for_prompts(
    *, campaign: Campaign, prompts: Sequence[Prompt]
) -> list[Comparison]:
    """comparisons_build_for_prompt for several prompts in four queries (the caller chunks).

    Builds exactly what one call per prompt would, with the same per-prompt seeds.
    """
    images: dict[int, list[Image]] = defaultdict(list)
    rows = (
        Image.objects.filter(prompt__in=[p.pk for p in prompts])
        .exclude(source=Image.Source.DERIVED)
        .order_by("prompt_id", "id")
        .only("id", "model_name", "prompt_id")
    )
    for image in rows:
        images[image.prompt_id].append(image)
    wanted = [
        (prompt.pk, group, None)
        for prompt in prompts
        for group in _regular_groups(campaign=campaign, prompt=prompt, images=images[prompt.pk])
    ]
    return _comparisons_insert(campaign=campaign, wanted=wanted, role=Comparison.Role.REGULAR)


def comparisons_build_for_campaign(*, campaign: Campaign) -> int:
    """Build comparisons for every prompt of the campaign; returns how many were created."""
    created = 0
    for prompt in campaign.prompts.order_by("id").iterator(chunk_size=500):
        created += len(comparisons_build_for_prompt(campaign=campaign, prompt=prompt))
    return created
