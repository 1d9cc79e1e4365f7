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


# Image imports: zip archives with a manifest, and Pick-a-Pic parquet files. ---------------


def manifest_csv(rows: list[dict], *, columns: tuple[str, ...] | None = None) -> bytes:
    import csv

    columns = columns or ("prompt", "file", "model_name", "seed")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def manifest_zip(*, prompts: int = 2, models: tuple[str, ...] = ("model-a", "model-b")) -> bytes:
    """A zip with manifest.csv and one PNG per prompt and model."""
    files, rows = {}, []
    for p in range(prompts):
        for m, model in enumerate(models):
            name = f"images/{p}-{m}.png"
            files[name] = png_bytes()
            rows.append({"prompt": f"prompt {p}", "file": name, "model_name": model, "seed": m})
    return zip_bytes({"manifest.csv": manifest_csv(rows), **files})


def pickapic_row(caption: str = "a red cube", **fields) -> dict:
    """One Pick-a-Pic row; image 0 preferred unless labels say otherwise."""
    import uuid
    from datetime import datetime

    row = {
        "caption": caption,
        "jpg_0": png_bytes(),
        "jpg_1": png_bytes(),
        "model_0": "model-a",
        "model_1": "model-b",
        "image_0_uid": str(uuid.uuid4()),
        "image_1_uid": str(uuid.uuid4()),
        "label_0": 1.0,
        "label_1": 0.0,
        "user_id": 7,
        "created_at": datetime(2023, 5, 1, 12, 30),
    }
    row.update(fields)
    if "best_image_uid" not in fields:
        label_0 = row["label_0"]
        row["best_image_uid"] = {1.0: row["image_0_uid"], 0.0: row["image_1_uid"]}.get(
            label_0, "none"
        )
    return row


def pickapic_parquet(rows: list[dict], *, drop: tuple[str, ...] = ()) -> bytes:
    """A parquet file with Pick-a-Pic's column names and types."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {
        "caption": pa.string(),
        "jpg_0": pa.binary(),
        "jpg_1": pa.binary(),
        "model_0": pa.string(),
        "model_1": pa.string(),
        "image_0_uid": pa.string(),
        "image_1_uid": pa.string(),
        "label_0": pa.float64(),
        "label_1": pa.float64(),
        "best_image_uid": pa.string(),
        "user_id": pa.int64(),
        "created_at": pa.timestamp("ns"),
    }
    columns = {c: pa.array([r[c] for r in rows], type=t) for c, t in types.items() if c not in drop}
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer, row_group_size=64)
    return buffer.getvalue()


# Generation ---------------------------------------------------------------------------------
class GeneratorFactory(factory.django.DjangoModelFactory):
    """A generator on the tiny offline pipeline (written once per process, on first use)."""

    class Meta:
        model = "generation.Generator"

    name = factory.Sequence(lambda n: f"tiny-{n}")
    source = factory.LazyFunction(lambda: str(_tiny_pipeline_dir()))
    steps = 2
    width = 32
    height = 32
    dtype = "float32"


def _tiny_pipeline_dir():
    from generation.tiny_model import cached_tiny_pipeline_dir

    return cached_tiny_pipeline_dir()


def user_as(campaign: Campaign, who: str):
    """A user in the role `who` for the campaign (admin, researcher, annotator,
    site_researcher or outsider); None for anonymous."""
    from django.contrib.auth.models import Group

    if who == "anonymous":
        return None
    if who == "annotator":
        return annotator(campaign)
    user = UserFactory()
    if who in ("admin", "researcher"):
        membership_set(campaign=campaign, user=user, role=who)
    elif who == "site_researcher":
        user.groups.add(Group.objects.get_or_create(name="researchers")[0])
    return user
