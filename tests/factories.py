"""Factories for tests: real rows, real image files, through the same services as the app."""

import io
import itertools

import factory
from django.contrib.auth import get_user_model
from PIL import Image as PILImage

from annotate.models import Campaign, Membership, Prompt
from annotate.services.campaigns import membership_set
from annotate.services.comparisons import comparisons_build_for_campaign
from annotate.services.images import image_create

_colours = itertools.count()


def png_bytes(
    *, size: tuple[int, int] = (16, 16), colour: tuple[int, int, int] | None = None
) -> bytes:
    """A real PNG; a distinct colour per call unless one is given."""
    if colour is None:
        n = next(_colours)
        colour = ((n * 37) % 256, (n * 91) % 256, (n * 53 + 17) % 256)
    image = PILImage.new("RGB", size, colour)
    # A gradient so blurred and noisy copies are visibly different from the clean image.
    for x in range(size[0]):
        image.putpixel((x, x % size[1]), (255 - colour[0], 255 - colour[1], 255 - colour[2]))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests-1")


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    slug = factory.Sequence(lambda n: f"campaign-{n}")
    title = factory.Sequence(lambda n: f"Campaign {n}")
    status = Campaign.Status.ACTIVE
    overlap = 3
    gold_rate = 0.0
    repeat_rate = 0.0
    qualification_size = 0


class PromptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prompt

    campaign = factory.SubFactory(CampaignFactory)
    text = factory.Sequence(lambda n: f"a photo of thing number {n}")


def add_images(prompt: Prompt, *, models: list[str]) -> list:
    return [image_create(prompt=prompt, data=png_bytes(), model_name=model)[0] for model in models]


def campaign_with_comparisons(
    *, prompts: int = 3, models: tuple[str, ...] = ("model-a", "model-b"), **campaign_fields
) -> Campaign:
    """An active campaign whose prompts each have one image per model, comparisons built."""
    campaign = CampaignFactory(**campaign_fields)
    for _ in range(prompts):
        add_images(PromptFactory(campaign=campaign), models=list(models))
    comparisons_build_for_campaign(campaign=campaign)
    return campaign


def annotator(campaign: Campaign, username: str | None = None, **kwargs) -> "get_user_model()":
    user = UserFactory(username=username) if username else UserFactory()
    membership_set(campaign=campaign, user=user, role=Membership.Role.ANNOTATOR, **kwargs)
    return user
