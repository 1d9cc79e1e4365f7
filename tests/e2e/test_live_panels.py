"""Job panels in a real browser: a job that ends while the page is open shows its end, and
what depends on it, without a reload."""

import pytest

from annotate.models import Membership
from generation.models import Generator
from generation.services.jobs import generation_job_create
from generation.services.sync import generation_job_run_sync
from tests.e2e.helpers import log_in, member
from tests.factories import CampaignFactory, PromptFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


def test_the_generation_panel_moves_to_done_while_the_dashboard_is_open(
    live_server, new_page, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "media"
    campaign = CampaignFactory(title="Shapes")
    for text in ("two red circles", "a blue star on the left"):
        PromptFactory(campaign=campaign, text=text)
    generators = [
        Generator.objects.create(
            name=f"live-{kind}", source=f"procedural:{kind}", steps=1, width=64, height=64
        )
        for kind in ("faithful", "careless")
    ]
    job = generation_job_create(campaign=campaign, generators=generators, seeds_per_prompt=1)
    member(campaign, "boss", role=Membership.Role.ADMIN)

    page = new_page()
    log_in(page, live_server.url, "boss", next_path=f"/campaigns/{campaign.pk}/dashboard/")
    panel = page.locator("[data-panel=generation]")
    assert "0 of 4" in panel.inner_text()
    assert page.get_attribute("#job-panels", "data-active") == "true"

    generation_job_run_sync(job=job, worker="test")  # a worker finishes it meanwhile
    page.wait_for_selector("#job-panels[data-active=false]", timeout=20_000)
    text = page.locator("[data-panel=generation]").inner_text()
    assert "4 of 4" in text and "done" in text
    # The answer that showed the end carried no trigger: the panels stopped polling.
    assert page.get_attribute("#job-panels", "hx-trigger") is None
