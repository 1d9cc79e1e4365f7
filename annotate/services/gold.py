"""Automatic gold items made from a campaign's own images.

Gold must not depend on taste, or it blocks honest raters with a minority taste. Each kind
has an answer that any attentive rater gives:
- corrupted: an image against a visibly degraded copy of itself; the clean one wins.
- mismatched: the prompt's image against an image made for another prompt; the match wins.
- identical: an image against an exact copy; the answer is a tie.
For ranking campaigns, an image and k-1 copies degraded more and more: clean first.
"""

import io
import random

from django.db import transaction
from PIL import Image as PILImage
from PIL import ImageFilter

from annotate.criteria import TIE
from annotate.models import Campaign, Comparison, Image
from annotate.services.comparisons import comparison_key, comparisons_create
from annotate.services.images import image_create

GOLD_KINDS = ("corrupted", "mismatched", "identical")


def degrade(data: bytes, *, strength: float) -> bytes:
    """Blur, add noise and crush with JPEG blocking; strength in (0, 1] sets how much."""
    with PILImage.open(io.BytesIO(data)) as source:
        image = source.convert("RGB")
    width, height = image.size
    image = image.filter(
        ImageFilter.GaussianBlur(radius=max(1.0, strength * min(width, height) / 24))
    )
    noise = PILImage.effect_noise((width, height), 40 + 80 * strength).convert("RGB")
    image = PILImage.blend(image, noise, 0.15 + 0.35 * strength)
    # Blocky down-and-up sampling, then a low-quality JPEG pass, re-encoded as PNG.
    factor = max(2, int(2 + 10 * strength))
    small = image.resize((max(1, width // factor), max(1, height // factor)), PILImage.NEAREST)
    image = small.resize((width, height), PILImage.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=max(5, int(30 - 25 * strength)))
    buffer.seek(0)
    with PILImage.open(buffer) as crushed:
        out = io.BytesIO()
        crushed.convert("RGB").save(out, format="PNG")
    return out.getvalue()


def _copy(image: Image, *, data: bytes) -> Image:
    derived, _ = image_create(
        prompt=image.prompt,
        data=data,
        source=Image.Source.DERIVED,
        model_name=image.model_name,
        derived_from=image,
    )
    return derived


def _read(image: Image) -> bytes:
    with image.file.open("rb") as handle:
        return handle.read()


@transaction.atomic
def gold_build(*, campaign: Campaign, count: int, seed: int = 0) -> list[Comparison]:
    """Create up to `count` gold comparisons from the campaign's images, kinds in rotation."""
    rng = random.Random(f"gold:{campaign.pk}:{seed}")
    criterion = campaign.criteria[0]
    key = criterion["key"]
    sources = list(
        Image.objects.filter(prompt__campaign=campaign)
        .exclude(source=Image.Source.DERIVED)
        .select_related("prompt")
        .order_by("id")
    )
    if not sources:
        return []
    kinds = ["corrupted"] if campaign.kind == Campaign.Kind.RANKING else ["corrupted", "mismatched"]
    if criterion.get("allow_tie") and campaign.kind == Campaign.Kind.PAIRWISE:
        kinds.append("identical")
    rng.shuffle(sources)
    # Keys already compared in this campaign: a mismatched pair must not repeat one.
    taken = set(Comparison.objects.filter(campaign=campaign).values_list("key", flat=True))
    created: list[Comparison] = []
    for index, image in enumerate(sources):
        if len(created) >= count:
            break
        kind = kinds[index % len(kinds)]
        data = _read(image)
        partner = None
        if kind == "mismatched":
            partner = _unrelated_partner(image, sources=sources, taken=taken, rng=rng)
        if kind == "mismatched" and partner is None:
            kind = "corrupted"  # no unrelated image that is not paired with this one already
        if campaign.kind == Campaign.Kind.RANKING:
            copies = [
                _copy(image, data=degrade(data, strength=(step + 1) / (campaign.k - 1)))
                for step in range(campaign.k - 1)
            ]
            group = [image, *copies]
            answer = {key: [[str(member.uid)] for member in group]}
        elif kind == "corrupted":
            group = [image, _copy(image, data=degrade(data, strength=1.0))]
            answer = {key: str(image.uid)}
        elif kind == "mismatched":
            group = [image, partner]
            answer = {key: str(image.uid)}
        else:
            # An exact copy as its own row: same pixels, another uid, so the answer is a tie.
            group = [image, _copy(image, data=_tie_copy(data))]
            answer = {key: TIE}
        made = comparisons_create(
            campaign=campaign,
            prompt=image.prompt,
            groups=[group],
            role=Comparison.Role.GOLD,
            gold_answers=[answer],
            gold_kind=kind,
        )
        taken.update(comparison.key for comparison in made)
        created += made
    return created


def _unrelated_partner(
    image: Image, *, sources: list[Image], taken: set[str], rng: random.Random, tries: int = 32
) -> Image | None:
    """An image made for another prompt whose pair with `image` is not compared yet."""
    for _ in range(tries):
        other = rng.choice(sources)
        if other.prompt_id != image.prompt_id and comparison_key((image.pk, other.pk)) not in taken:
            return other
    return None


def _tie_copy(data: bytes) -> bytes:
    """Same pixels, re-encoded, so the derived copy is a distinct file and image."""
    with PILImage.open(io.BytesIO(data)) as source:
        image = source.convert("RGB")
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()
