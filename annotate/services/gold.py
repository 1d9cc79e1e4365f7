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
from PIL import ImageFilter, JpegImagePlugin

from annotate.campaign_checks import gold_count_for
from annotate.criteria import TIE
from annotate.models import Campaign, Comparison, Image
from annotate.services.comparisons import comparison_key, comparisons_create
from annotate.services.images import image_create

GOLD_KINDS = ("corrupted", "mismatched", "identical")


def _encoder_like(source: PILImage.Image) -> dict:
    """Pillow save() arguments that write a new image as `source` was written: the same
    format and, for JPEG, the same quantisation tables and chroma subsampling. A derived
    copy then looks, from its file alone, like the images it sits beside."""
    fmt = source.format if source.format in ("JPEG", "WEBP") else "PNG"
    if fmt == "JPEG":
        options = {"format": "JPEG", "qtables": source.quantization}
        subsampling = JpegImagePlugin.get_sampling(source)
        if subsampling != -1:
            options["subsampling"] = subsampling
        return options
    if fmt == "WEBP":
        return {"format": "WEBP", "quality": 90}
    return {"format": "PNG"}


def _encode(image: PILImage.Image, encoder: dict) -> bytes:
    out = io.BytesIO()
    image.save(out, **encoder)
    return out.getvalue()


def degrade(data: bytes, *, strength: float) -> bytes:
    """Blur, add noise and crush with JPEG blocking; strength in (0, 1] sets how much.

    The result is stored in the source's own format (see _encoder_like)."""
    with PILImage.open(io.BytesIO(data)) as source:
        encoder = _encoder_like(source)
        image = source.convert("RGB")
    width, height = image.size
    image = image.filter(
        ImageFilter.GaussianBlur(radius=max(1.0, strength * min(width, height) / 24))
    )
    noise = PILImage.effect_noise((width, height), 40 + 80 * strength).convert("RGB")
    image = PILImage.blend(image, noise, 0.15 + 0.35 * strength)
    # Blocky down-and-up sampling, then a low-quality JPEG pass, re-encoded like the source.
    factor = max(2, int(2 + 10 * strength))
    small = image.resize((max(1, width // factor), max(1, height // factor)), PILImage.NEAREST)
    image = small.resize((width, height), PILImage.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=max(5, int(30 - 25 * strength)))
    buffer.seek(0)
    with PILImage.open(buffer) as crushed:
        return _encode(crushed.convert("RGB"), encoder)


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
def gold_build(
    *, campaign: Campaign, count: int, seed: int = 0, rng: random.Random | None = None
) -> list[Comparison]:
    """Create up to `count` gold comparisons from the campaign's images, kinds in rotation.

    `rng` (a simulation's) replaces the generator seeded by the campaign and `seed`, so a
    simulated campaign gets the same gold whatever its primary key.
    """
    rng = rng or random.Random(f"gold:{campaign.pk}:{seed}")
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
    """Same pixels (to the eye: a JPEG or WebP is re-encoded as it was encoded), in the
    source's format, so the derived copy is a distinct file and image."""
    with PILImage.open(io.BytesIO(data)) as source:
        encoder = _encoder_like(source)
        image = source.convert("RGB")
    copy = _encode(image, encoder)
    if copy == data:
        # The same bytes would be the same content-addressed file (one URL for both
        # sides); another encoder setting keeps the pixels and changes the file.
        tweak = {"compress_level": 9} if encoder["format"] == "PNG" else {"optimize": True}
        copy = _encode(image, {**encoder, **tweak})
    return copy


def gold_top_up(*, campaign: Campaign, wanted: int | None = None, seed: int = 0) -> int:
    """Make gold until the campaign has `wanted` items (default: gold_count_for its regular
    comparisons); never removes any. Returns how many were made."""
    comparisons = Comparison.objects.filter(campaign=campaign)
    if wanted is None:
        regular = comparisons.filter(role=Comparison.Role.REGULAR).count()
        wanted = gold_count_for(regular_comparisons=regular)
    missing = wanted - comparisons.filter(role=Comparison.Role.GOLD).count()
    if missing <= 0:
        return 0
    return len(gold_build(campaign=campaign, count=missing, seed=seed))
