"""The generation API: start a job (202), follow it, cancel it; who may, and bad input."""

import pytest
from django.urls import reverse

from annotate.models import Campaign, Membership
from annotate.services.campaigns import membership_set
from generation.models import GenerationJob
from generation.services import jobs
from tests.factories import (
    CampaignFactory,
    GeneratorFactory,
    PromptFactory,
    UserFactory,
    annotator,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign():
    campaign = CampaignFactory(status=Campaign.Status.DRAFT)
    PromptFactory(campaign=campaign)
    PromptFactory(campaign=campaign)
    return campaign


@pytest.fixture
def admin_client(api_client, campaign):
    user = UserFactory()
    membership_set(campaign=campaign, user=user, role=Membership.Role.ADMIN)
    api_client.force_authenticate(user)
    return api_client


def generate_url(campaign):
    return reverse("generation:generate", args=[campaign.pk])


def job_url(job_id):
    return reverse("generation:job", args=[job_id])


def start(client, campaign, **body):
    payload = {"generators": ["tiny-a", "tiny-b"], "seeds_per_prompt": 2, **body}
    return client.post(generate_url(campaign), payload, format="json")


@pytest.fixture
def generators():
    return [GeneratorFactory(name="tiny-a"), GeneratorFactory(name="tiny-b")]


def test_an_admin_starts_a_job_and_gets_it_with_its_progress(
    admin_client, campaign, generators, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as on_commit:
        response = start(admin_client, campaign, gold=3)

    assert response.status_code == 202
    body = response.json()
    job = GenerationJob.objects.get()
    assert body["id"] == job.pk
    assert body["status"] == "pending"
    assert body["generators"] == ["tiny-a", "tiny-b"]
    assert (body["seeds_per_prompt"], body["seed"], body["gold"]) == (2, 0, 3)
    assert body["progress"] == {
        "total": 8,
        "pending": 8,
        "running": 0,
        "done": 0,
        "failed": 0,
        "finished": 0,
    }
    assert body["errors"] == []
    assert len(on_commit) == 1  # the batches go out once the job is committed

    detail = admin_client.get(job_url(job.pk))
    assert detail.status_code == 200
    assert detail.json()["progress"]["total"] == 8
    listing = admin_client.get(generate_url(campaign))
    assert [row["id"] for row in listing.json()] == [job.pk]


def test_generators_can_be_named_by_id(admin_client, campaign, generators):
    response = start(admin_client, campaign, generators=[generators[0].pk])
    assert response.status_code == 202
    assert response.json()["generators"] == ["tiny-a"]


def test_a_second_start_while_one_runs_is_a_conflict(admin_client, campaign, generators):
    first = start(admin_client, campaign).json()
    response = start(admin_client, campaign)
    assert response.status_code == 409
    assert response.json() == {
        "detail": jobs.ERROR_JOB_RUNNING.format(job_id=first["id"]),
        "code": "job_running",
        "job": first["id"],
    }
    assert GenerationJob.objects.count() == 1


def test_an_unknown_generator_is_named(admin_client, campaign, generators):
    response = start(admin_client, campaign, generators=["tiny-a", "sdxl"])
    assert response.status_code == 400
    assert response.json() == {
        "detail": "Unknown generators: sdxl.",
        "code": "unknown_generator",
    }
    assert not GenerationJob.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"generators": "tiny-a"},
        {"generators": []},
        {"generators": [{"name": "tiny-a"}]},
        {"generators": ["x" * 201]},
        {"generators": ["tiny-a"] * 33},
        {"seeds_per_prompt": 0},
        {"seeds_per_prompt": 65},
        {"seeds_per_prompt": "many"},
        {"seed": -1},
        {"gold": -1},
    ],
)
def test_malformed_input_is_a_400(admin_client, campaign, generators, body):
    response = start(admin_client, campaign, **body)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert not GenerationJob.objects.exists()


def test_a_missing_field_is_a_400(admin_client, campaign, generators):
    response = admin_client.post(generate_url(campaign), {"generators": ["tiny-a"]}, format="json")
    assert response.status_code == 400
    assert response.json()["fields"]["seeds_per_prompt"]


def test_anonymous_users_are_refused(api_client, campaign, generators):
    assert start(api_client, campaign).status_code == 401
    assert api_client.get(job_url(1)).status_code == 401
    assert not GenerationJob.objects.exists()


def test_annotators_and_researchers_may_not_generate(api_client, campaign, generators):
    user = annotator(campaign)
    api_client.force_authenticate(user)
    assert start(api_client, campaign).status_code == 403
    researcher = UserFactory()
    membership_set(campaign=campaign, user=researcher, role=Membership.Role.RESEARCHER)
    api_client.force_authenticate(researcher)
    assert start(api_client, campaign).status_code == 403
    assert not GenerationJob.objects.exists()


def test_a_non_member_sees_neither_the_campaign_nor_its_jobs(
    admin_client, api_client, campaign, generators
):
    job_id = start(admin_client, campaign).json()["id"]
    outsider = UserFactory()
    admin_client.force_authenticate(outsider)
    assert start(admin_client, campaign).status_code == 404
    assert admin_client.get(job_url(job_id)).status_code == 404
    assert admin_client.post(reverse("generation:job-cancel", args=[job_id])).status_code == 404
    assert admin_client.get(job_url(999999)).status_code == 404


def test_an_annotator_may_not_read_or_cancel_a_job(admin_client, campaign, generators):
    job_id = start(admin_client, campaign).json()["id"]
    admin_client.force_authenticate(annotator(campaign))
    assert admin_client.get(job_url(job_id)).status_code == 403
    assert admin_client.post(reverse("generation:job-cancel", args=[job_id])).status_code == 403
    assert GenerationJob.objects.get().status == "pending"


def test_an_admin_cancels_a_job_once(admin_client, campaign, generators):
    job_id = start(admin_client, campaign).json()["id"]
    url = reverse("generation:job-cancel", args=[job_id])
    response = admin_client.post(url)
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["progress"]["failed"] == 8
    assert admin_client.post(url).status_code == 409


def test_wrong_methods_are_refused(admin_client, campaign, generators):
    assert admin_client.put(generate_url(campaign), {}, format="json").status_code == 405
    assert admin_client.delete(job_url(1)).status_code == 405
    assert admin_client.get(reverse("generation:job-cancel", args=[1])).status_code == 405


def test_generators_are_listed_for_campaign_admins_only(admin_client, api_client, generators):
    response = admin_client.get(reverse("generation:generators"))
    assert response.status_code == 200
    assert [row["name"] for row in response.json()] == ["tiny-a", "tiny-b"]
    api_client.force_authenticate(UserFactory())
    assert api_client.get(reverse("generation:generators")).status_code == 403


def test_reading_a_job_takes_a_fixed_number_of_queries(
    admin_client, campaign, generators, django_assert_max_num_queries
):
    job_id = start(admin_client, campaign, seeds_per_prompt=8).json()["id"]
    with django_assert_max_num_queries(6):
        response = admin_client.get(job_url(job_id))
    assert response.json()["progress"]["total"] == 32
