"""Starting generation from the Django admin: an action on the generator list."""

import pytest

from annotate.models import Campaign
from generation.models import GenerationJob
from tests.factories import CampaignFactory, GeneratorFactory, PromptFactory, UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/generation/generator/"


@pytest.fixture
def setup(client):
    campaign = CampaignFactory(status=Campaign.Status.DRAFT)
    PromptFactory(campaign=campaign)
    generators = [GeneratorFactory(), GeneratorFactory()]
    return campaign, generators


def action(client, generators, **form):
    data = {"action": "start_generation", "_selected_action": [g.pk for g in generators], **form}
    return client.post(CHANGELIST, data)


def test_the_action_asks_for_the_campaign_then_starts_a_job(
    client, setup, django_capture_on_commit_callbacks
):
    campaign, generators = setup
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    form = action(client, generators)
    assert form.status_code == 200
    assert b"Start generating" in form.content

    with django_capture_on_commit_callbacks() as on_commit:
        done = action(
            client, generators, apply="1", campaign=campaign.pk, seeds_per_prompt=3, seed=0
        )
    assert done.status_code == 302
    job = GenerationJob.objects.get()
    assert (job.campaign, job.seeds_per_prompt, job.items.count()) == (campaign, 3, 6)
    assert set(job.generators.all()) == set(generators)
    assert len(on_commit) == 1


def test_staff_who_are_not_campaign_admins_cannot_start_a_job(client, setup):
    from django.contrib.auth.models import Permission

    campaign, generators = setup
    staff = UserFactory(is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__endswith="_generator"))
    client.force_login(staff)

    response = action(
        client, generators, apply="1", campaign=campaign.pk, seeds_per_prompt=1, seed=0
    )
    assert response.status_code == 302
    assert not GenerationJob.objects.exists()
    follow = client.get(CHANGELIST)
    assert f"You are not an admin of campaign {campaign.slug}." in follow.content.decode()


def test_the_job_page_shows_progress(client, setup):
    campaign, generators = setup
    admin = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin)
    action(client, generators, apply="1", campaign=campaign.pk, seeds_per_prompt=1, seed=0)
    job = GenerationJob.objects.get()
    page = client.get(f"/admin/generation/generationjob/{job.pk}/change/")
    assert page.status_code == 200
    assert "0 / 0 / 2" in page.content.decode()


def test_the_resume_action_re_sends_a_jobs_pending_items(
    client, setup, django_capture_on_commit_callbacks
):
    campaign, generators = setup
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    action(client, generators, apply="1", campaign=campaign.pk, seeds_per_prompt=1, seed=0)
    job = GenerationJob.objects.get()

    with django_capture_on_commit_callbacks() as sends:
        response = client.post(
            "/admin/generation/generationjob/",
            {"action": "resume", "_selected_action": [job.pk]},
        )
    assert response.status_code == 302
    assert sorted(send.args[1] for send in sends) == sorted(g.pk for g in generators)
