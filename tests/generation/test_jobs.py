"""Starting generation jobs: items, seeds, refusals, and enqueueing on commit."""

import shutil

import pytest

from annotate.models import Campaign
from generation.models import GenerationItem, GenerationJob
from generation.services import jobs
from generation.services.jobs import (
    generation_job_cancel,
    generation_job_create,
    generation_job_start,
    item_seed,
)
from generation.tiny_model import write_tiny_pipeline
from pickwise.errors import ApplicationError
from pickwise.model_folders import ERROR_MODEL_FOLDER_UNAVAILABLE
from tests.factories import CampaignFactory, GeneratorFactory, PromptFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign():
    campaign = CampaignFactory(status=Campaign.Status.DRAFT)
    for _ in range(3):
        PromptFactory(campaign=campaign)
    return campaign


def test_it_expands_prompts_by_generators_by_seeds_into_items(campaign):
    first, second = GeneratorFactory(), GeneratorFactory()
    job = generation_job_create(
        campaign=campaign, generators=[first.name, str(second.pk)], seeds_per_prompt=2, seed=7
    )

    items = list(job.items.order_by("prompt_id", "index", "generator_id"))
    assert len(items) == 3 * 2 * 2
    assert {item.status for item in items} == {GenerationItem.Status.PENDING}
    assert list(job.generators.order_by("pk")) == [first, second]
    for item in items:
        assert item.seed == item_seed(job_seed=7, prompt_id=item.prompt_id, index=item.index)
    # Both generators start a prompt's index-th image from the same noise.
    by_key = {}
    for item in items:
        by_key.setdefault((item.prompt_id, item.index), set()).add(item.seed)
    assert all(len(seeds) == 1 for seeds in by_key.values())
    assert len({seeds.pop() for seeds in by_key.values()}) == 6


def test_item_seeds_are_deterministic_and_depend_on_every_part():
    seed = item_seed(job_seed=0, prompt_id=1, index=0)
    assert seed == item_seed(job_seed=0, prompt_id=1, index=0)
    assert 0 <= seed < 2**63
    others = {
        item_seed(job_seed=1, prompt_id=1, index=0),
        item_seed(job_seed=0, prompt_id=2, index=0),
        item_seed(job_seed=0, prompt_id=1, index=1),
    }
    assert seed not in others and len(others) == 3


def test_a_draft_campaign_becomes_generating(campaign):
    generation_job_create(campaign=campaign, generators=[GeneratorFactory()], seeds_per_prompt=1)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.GENERATING


def test_an_active_campaign_stays_active(campaign):
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.ACTIVE)
    generation_job_create(campaign=campaign, generators=[GeneratorFactory()], seeds_per_prompt=1)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.ACTIVE


def test_it_names_unknown_generators(campaign):
    GeneratorFactory(name="known")
    with pytest.raises(ApplicationError) as raised:
        generation_job_create(
            campaign=campaign, generators=["known", "nope", "999999"], seeds_per_prompt=1
        )
    assert raised.value.code == "unknown_generator"
    assert raised.value.message == jobs.ERROR_UNKNOWN_GENERATORS.format(names="nope, 999999")
    assert not GenerationJob.objects.exists()


def test_it_refuses_a_generator_whose_folder_has_gone(campaign, tmp_path):
    folder = write_tiny_pipeline(tmp_path / "gone")
    generator = GeneratorFactory(source=str(folder))
    shutil.rmtree(folder)
    with pytest.raises(ApplicationError) as raised:
        generation_job_create(campaign=campaign, generators=[generator], seeds_per_prompt=1)
    assert raised.value.code == "invalid_generator"
    # A gone folder gets the same answer as a forbidden one, and names no server path.
    assert raised.value.message == (
        f"Generator {generator.name} is unusable: source: "
        + ERROR_MODEL_FOLDER_UNAVAILABLE.format(field="source")
    )
    assert str(tmp_path) not in raised.value.message


def test_it_refuses_a_second_job_while_one_is_running(campaign):
    generator = GeneratorFactory()
    first = generation_job_create(campaign=campaign, generators=[generator], seeds_per_prompt=1)
    with pytest.raises(ApplicationError) as raised:
        generation_job_create(campaign=campaign, generators=[generator], seeds_per_prompt=1)
    assert (raised.value.status, raised.value.code) == (409, "job_running")
    assert raised.value.message == jobs.ERROR_JOB_RUNNING.format(job_id=first.pk)
    generation_job_cancel(job=first)
    assert generation_job_create(campaign=campaign, generators=[generator], seeds_per_prompt=1)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"seeds_per_prompt": 0}, jobs.ERROR_BAD_SEEDS),
        ({"seeds_per_prompt": 65}, jobs.ERROR_BAD_SEEDS),
        ({"seeds_per_prompt": True}, jobs.ERROR_BAD_SEEDS),
        ({"seed": -1}, jobs.ERROR_BAD_JOB_SEED),
        ({"gold_count": -1}, jobs.ERROR_BAD_GOLD),
        ({"generators": []}, jobs.ERROR_NO_GENERATORS),
    ],
)
def test_it_refuses_malformed_jobs(campaign, fields, message):
    arguments = {"generators": ["x"], "seeds_per_prompt": 1, **fields}
    with pytest.raises(ApplicationError) as raised:
        generation_job_create(campaign=campaign, **arguments)
    assert raised.value.message == message


def test_it_refuses_a_campaign_without_prompts_or_a_closed_one():
    generator = GeneratorFactory()
    with pytest.raises(ApplicationError, match=jobs.ERROR_NO_PROMPTS):
        generation_job_create(
            campaign=CampaignFactory(), generators=[generator], seeds_per_prompt=1
        )
    closed = CampaignFactory(status=Campaign.Status.CLOSED)
    PromptFactory(campaign=closed)
    with pytest.raises(ApplicationError, match=jobs.ERROR_CAMPAIGN_CLOSED):
        generation_job_create(campaign=closed, generators=[generator], seeds_per_prompt=1)


def test_it_enqueues_one_task_per_batch_after_commit(
    campaign, settings, django_capture_on_commit_callbacks
):
    settings.PICKWISE_GENERATION_BATCH_SIZE = 4
    first, second = GeneratorFactory(), GeneratorFactory()
    with django_capture_on_commit_callbacks() as on_commit:
        job = generation_job_start(
            campaign=campaign, generators=[first, second], seeds_per_prompt=2
        )
    assert len(on_commit) == 1  # nothing is sent before the items are committed

    with django_capture_on_commit_callbacks() as sends:
        on_commit[0]()
    messages = [(send.func.__self__.name, send.args) for send in sends]
    # 6 items per generator in batches of 4: the generators take turns, prompt by prompt.
    items = {
        g.pk: list(job.items.filter(generator=g).order_by("prompt_id", "index"))
        for g in (first, second)
    }
    ids = {pk: [item.pk for item in rows] for pk, rows in items.items()}
    assert messages == [
        ("generation.run_batch", (job.pk, first.pk, ids[first.pk][:4])),
        ("generation.run_batch", (job.pk, second.pk, ids[second.pk][:4])),
        ("generation.run_batch", (job.pk, first.pk, ids[first.pk][4:])),
        ("generation.run_batch", (job.pk, second.pk, ids[second.pk][4:])),
    ]


def test_cancelling_fails_the_pending_items_and_frees_the_campaign(campaign):
    job = generation_job_create(
        campaign=campaign, generators=[GeneratorFactory()], seeds_per_prompt=1
    )
    job = generation_job_cancel(job=job)
    assert job.status == GenerationJob.Status.CANCELLED
    assert set(job.items.values_list("status", "error")) == {("failed", jobs.CANCELLED)}
    with pytest.raises(ApplicationError) as raised:
        generation_job_cancel(job=job)
    assert raised.value.code == "job_finished"
