"""Running batches on the tiny pipeline: real images, idempotence, claims and completion."""

import hashlib
import io
from datetime import timedelta

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image as PILImage

from annotate.campaign_checks import gold_count_for
from annotate.models import Campaign, Comparison, Image
from generation.models import GenerationItem, GenerationJob
from generation.services import batches as batches_module
from generation.services.batches import generation_batch_run, items_claim
from generation.services.jobs import generation_batches, generation_job_create
from generation.services.recovery import generation_items_recover
from generation.services.sync import generation_job_run_sync
from tests.factories import CampaignFactory, GeneratorFactory, PromptFactory
from tests.generation.pixels import PIXEL_TOLERANCE

pytestmark = pytest.mark.django_db


def make_job(*, prompts=2, generators=2, seeds=2, status=Campaign.Status.GENERATING, **job):
    job.setdefault("gold_count", 0)
    campaign = CampaignFactory(status=status)
    for _ in range(prompts):
        PromptFactory(campaign=campaign)
    made = [GeneratorFactory() for _ in range(generators)]
    return generation_job_create(campaign=campaign, generators=made, seeds_per_prompt=seeds, **job)


def read_pixels(image: Image) -> np.ndarray:
    with default_storage.open(image.file.name, "rb") as handle:
        data = handle.read()
    assert hashlib.sha256(data).hexdigest() == image.sha256
    decoded = PILImage.open(io.BytesIO(data))
    assert decoded.format == "PNG"
    return np.asarray(decoded.convert("RGB"), dtype=np.int16)


def write_random_lora(pipeline_dir: str, folder):
    """A LoRA in diffusers' format with random A and B, so it really changes the images."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(pipeline_dir, subfolder="unet")
    torch.manual_seed(0)
    unet.add_adapter(
        LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=["to_q", "to_v"])
    )
    StableDiffusionPipeline.save_lora_weights(
        save_directory=folder,
        unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(unet)),
        safe_serialization=True,
    )
    return folder


def test_a_job_stores_real_decodable_images_with_their_metadata():
    job = make_job(prompts=2, generators=2, seeds=2, gold_count=0)
    generation_job_run_sync(job=job, worker="test")

    images = list(Image.objects.filter(prompt__campaign=job.campaign).order_by("id"))
    assert len(images) == 8
    for image in images:
        item = GenerationItem.objects.get(image=image)
        assert image.source == Image.Source.GENERATED
        assert (image.generator_id, image.seed, image.prompt_id) == (
            item.generator_id,
            item.seed,
            item.prompt_id,
        )
        assert image.model_name == item.generator.name
        assert (image.width, image.height) == (32, 32)
        assert read_pixels(image).shape == (32, 32, 3)
        assert image.params["seed"] == item.seed
        assert image.params["prompt"] == item.prompt.text
        assert image.params["steps"] == 2
        assert image.params["generator"] == item.generator.name
        assert image.params["scheduler"] == "DDIMScheduler"
        assert image.params["diffusers_version"]
        # Content-addressed: the path names the hash, never the model.
        assert image.file.name.endswith(f"{image.sha256}.png")
        assert item.generator.name not in image.file.name
    assert set(job.items.values_list("status", flat=True)) == {"done"}


def test_running_batches_again_creates_no_duplicates():
    job = make_job(prompts=2, generators=2, seeds=2)
    (generator_id, item_ids), *rest = generation_batches(job=job)

    first = generation_batch_run(job_id=job.pk, generator_id=generator_id, item_ids=item_ids)
    # A duplicated or redelivered message finds nothing left to claim.
    again = generation_batch_run(job_id=job.pk, generator_id=generator_id, item_ids=item_ids)
    assert (first.generated, again.claimed) == (len(item_ids), 0)
    # Killed after storing but before marking the items done: the images are reused.
    job.items.filter(pk__in=item_ids).update(status="pending", image=None)
    lost = generation_batch_run(job_id=job.pk, generator_id=generator_id, item_ids=item_ids)
    assert (lost.generated, lost.reused) == (0, len(item_ids))

    generation_job_run_sync(job=job, worker="test")
    generation_job_run_sync(job=job, worker="test")  # a finished job: nothing to do

    images = Image.objects.all()
    assert images.count() == 8
    assert len(set(images.values_list("prompt_id", "generator_id", "seed"))) == 8
    assert set(job.items.values_list("status", flat=True)) == {"done"}
    assert sorted(job.items.values_list("image_id", flat=True)) == sorted(
        images.values_list("pk", flat=True)
    )
    assert Comparison.objects.count() == 2 * 4  # per prompt: 2 x 2 images across generators


def test_a_second_job_with_more_seeds_keeps_the_first_images_and_adds_the_rest():
    job = make_job(prompts=1, generators=2, seeds=1)
    generation_job_run_sync(job=job, worker="test")
    first = set(Image.objects.values_list("pk", flat=True))

    again = generation_job_create(
        campaign=job.campaign, generators=list(job.generators.all()), seeds_per_prompt=3
    )
    generation_job_run_sync(job=again, worker="test")

    assert first < set(Image.objects.values_list("pk", flat=True))
    assert Image.objects.filter(source="generated").count() == 6
    assert set(again.items.values_list("status", flat=True)) == {"done"}


@pytest.mark.numerics
def test_a_batch_gives_the_same_images_as_one_call_per_image(settings):
    from generation.backends.diffusers_backend import generate_batch

    settings.PICKWISE_GENERATION_BATCH_SIZE = 4
    job = make_job(prompts=2, generators=1, seeds=2)
    generation_job_run_sync(job=job, worker="test")

    items = list(job.items.select_related("prompt", "generator", "image"))
    assert {image.params["batch_size"] for image in Image.objects.filter(source="generated")} == {4}
    for item in items:
        alone = generate_batch(item.generator.to_spec(), [(item.prompt.text, None, item.seed)])[0]
        assert alone.metadata["batch_size"] == 1
        difference = np.abs(read_pixels(item.image) - np.asarray(alone.image, dtype=np.int16))
        assert difference.max() <= PIXEL_TOLERANCE
    # And different seeds really give different images: tens of levels, not rounding.
    first, second = (read_pixels(item.image) for item in items[:2])
    assert np.abs(first - second).max() > 20


def test_comparisons_follow_each_prompt_and_gold_and_activation_follow_the_job():
    job = make_job(prompts=3, generators=2, seeds=1, gold_count=None)
    campaign = job.campaign
    batches = generation_batches(job=job)
    first_prompt = job.items.order_by("prompt_id").first().prompt_id

    # Only the first prompt's two images: that prompt gets its pair, the others wait.
    for generator_id, item_ids in batches:
        mine = list(
            job.items.filter(pk__in=item_ids, prompt_id=first_prompt).values_list("pk", flat=True)
        )
        generation_batch_run(job_id=job.pk, generator_id=generator_id, item_ids=mine)
    assert list(Comparison.objects.values_list("prompt_id", flat=True)) == [first_prompt]
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.RUNNING
    assert job.comparisons_created == 1

    generation_job_run_sync(job=job, worker="test")
    job.refresh_from_db()
    campaign.refresh_from_db()
    regular = Comparison.objects.filter(role=Comparison.Role.REGULAR)
    assert regular.count() == 3
    for comparison in regular:
        names = {image.model_name for image in comparison.images.all()}
        assert len(names) == 2  # pairs across generators
    assert job.status == GenerationJob.Status.DONE
    assert job.comparisons_created == 3
    gold = Comparison.objects.filter(role=Comparison.Role.GOLD).count()
    assert gold == job.gold_created == gold_count_for(regular_comparisons=3) == 0
    assert campaign.status == Campaign.Status.ACTIVE


def test_the_gold_count_is_a_job_option():
    job = make_job(prompts=2, generators=2, seeds=1, gold_count=2)
    generation_job_run_sync(job=job, worker="test")
    assert Comparison.objects.filter(role=Comparison.Role.GOLD).count() == 2


def test_a_bad_spec_fails_the_items_clearly_and_the_job_with_them():
    job = make_job(prompts=1, generators=1, seeds=2)
    job.generators.update(pipeline_class="NoSuchPipeline")

    generation_job_run_sync(job=job, worker="test")

    job.refresh_from_db()
    assert job.status == GenerationJob.Status.FAILED
    assert job.error == "No image could be generated; see the items' errors."
    errors = set(job.items.values_list("status", "error"))
    assert errors == {
        (
            "failed",
            "The generator spec is unusable: pipeline_class: diffusers has no pipeline class "
            "NoSuchPipeline.",
        )
    }
    assert not Image.objects.exists()
    job.campaign.refresh_from_db()
    assert job.campaign.status == Campaign.Status.GENERATING


def test_a_claimed_item_cannot_be_claimed_again_until_its_claim_goes_stale(settings):
    job = make_job(prompts=1, generators=1, seeds=2)
    generator = job.generators.get()
    ids = list(job.items.values_list("pk", flat=True))

    _, first = items_claim(job=job, generator=generator, item_ids=ids, worker="a")
    _, second = items_claim(job=job, generator=generator, item_ids=ids, worker="b")
    assert (len(first), len(second)) == (2, 0)

    job.items.update(heartbeat_at=timezone.now() - timedelta(seconds=10))
    settings.PICKWISE_GENERATION_HEARTBEAT_TIMEOUT = 5
    _, third = items_claim(job=job, generator=generator, item_ids=ids, worker="b")
    assert len(third) == 2
    assert set(job.items.values_list("worker", "attempts")) == {("b", 2)}


def test_an_item_that_keeps_killing_its_worker_is_given_up(settings):
    settings.PICKWISE_GENERATION_MAX_ATTEMPTS = 2
    job = make_job(prompts=1, generators=1, seeds=1)
    job.items.update(attempts=2)

    generation_job_run_sync(job=job, worker="test")

    item = job.items.get()
    assert item.status == "failed"
    assert item.error == batches_module.ERROR_GAVE_UP.format(attempts=2)


def test_a_restarted_worker_gives_back_what_it_held_and_finishes_the_job(
    django_capture_on_commit_callbacks,
):
    job = make_job(prompts=1, generators=1, seeds=2)
    generator = job.generators.get()
    ids = list(job.items.values_list("pk", flat=True))
    items_claim(job=job, generator=generator, item_ids=ids, worker="gen@host")  # then killed

    with django_capture_on_commit_callbacks(execute=False) as sends:
        counts = generation_items_recover(worker="other@host")
    assert counts["released"] == 0 and not sends  # another worker's claims are left alone

    with django_capture_on_commit_callbacks(execute=False) as sends:
        counts = generation_items_recover(worker="gen@host")
    assert counts == {"released": 2, "batches_sent": 1, "jobs_closed": 0}
    assert [send.args for send in sends] == [(job.pk, generator.pk, sorted(ids))]

    generation_batch_run(job_id=job.pk, generator_id=generator.pk, item_ids=ids)
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.DONE
    assert Image.objects.count() == 2


def test_reward_scores_are_stored_when_a_local_model_is_configured(settings, tmp_path):
    from generation.tiny_model import write_tiny_clip_model

    settings.PICKWISE_REWARD_MODEL_DIR = str(write_tiny_clip_model(tmp_path / "pickscore"))

    job = make_job(prompts=1, generators=2, seeds=1)
    generation_job_run_sync(job=job, worker="test")

    scores = list(Image.objects.filter(source="generated").values_list("score", flat=True))
    assert len(scores) == 2 and all(isinstance(score, float) for score in scores)


def test_without_a_reward_model_images_have_no_score():
    job = make_job(prompts=1, generators=1, seeds=1)
    generation_job_run_sync(job=job, worker="test")
    assert Image.objects.get().score is None


def test_a_misconfigured_reward_model_fails_the_items_clearly(settings, tmp_path):
    settings.PICKWISE_REWARD_MODEL_DIR = str(tmp_path / "missing")
    job = make_job(prompts=1, generators=1, seeds=1)
    generation_job_run_sync(job=job, worker="test")
    item = job.items.get()
    assert item.status == "failed"
    assert item.error == (
        "Generation failed: Reward scoring is configured but failed: The reward model folder "
        f"{tmp_path / 'missing'} does not exist."
    )


def test_a_base_and_a_lora_tuned_generator_make_different_images_from_the_same_seeds(tmp_path):
    base = GeneratorFactory(name="base")
    lora = write_random_lora(base.source, tmp_path / "lora")
    tuned = GeneratorFactory(name="tuned", lora_path=str(lora))
    tuned.full_clean()
    campaign = CampaignFactory()
    PromptFactory(campaign=campaign)
    job = generation_job_create(
        campaign=campaign, generators=[base, tuned], seeds_per_prompt=1, gold_count=0
    )
    generation_job_run_sync(job=job, worker="test")

    made = {image.generator.name: image for image in Image.objects.select_related("generator")}
    assert made["base"].seed == made["tuned"].seed
    assert made["tuned"].params["lora_path"] == str(lora)
    assert np.abs(read_pixels(made["base"]) - read_pixels(made["tuned"])).max() > 0


def test_a_bad_spec_leaves_images_made_earlier_in_place():
    from annotate.services.images import image_create
    from tests.factories import png_bytes

    job = make_job(prompts=1, generators=1, seeds=2)
    generator = job.generators.get()
    made, missing = job.items.select_related("prompt").order_by("index")
    image_create(
        prompt=made.prompt,
        data=png_bytes(),
        source="generated",
        generator=generator,
        seed=made.seed,
    )
    job.generators.update(pipeline_class="NoSuchPipeline")

    generation_job_run_sync(job=job, worker="test")

    assert dict(job.items.values_list("pk", "status")) == {made.pk: "done", missing.pk: "failed"}
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.DONE
