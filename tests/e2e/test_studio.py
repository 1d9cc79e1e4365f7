"""An admin builds a campaign through the app's own pages: settings, prompts, members.

Every page is watched for Content-Security-Policy refusals, script errors and requests that
leave the server; each page's screenshot goes to docs/screenshots/ for the README.
"""

import pytest
from django.contrib.auth import get_user_model

from annotate.models import Campaign, Membership, Prompt
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.helpers import log_in
from tests.e2e.test_csp import watch
from tests.factories import UserFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

LONG_PROMPT = (
    "a lighthouse on a basalt cliff in a violent winter storm at dusk, waves breaking over the "
    "rocks and spray reaching the lamp room, a small fishing boat with a red hull and yellow "
    "oilskins on deck fighting its way home past the headland, gulls wheeling in the wind, "
    "dark green and grey clouds lit from below by the last orange light of the sun, oil "
    "painting in the style of the Romantic seascape painters, dramatic, highly detailed"
)
JSONL = b'{"text": "a steam train crossing a viaduct", "negative_prompt": "blurry"}\n'


def shot(page, name: str, *, full_page: bool = True) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def test_an_admin_builds_a_campaign_with_the_pages_only(live_server, new_page, tmp_path):
    base = live_server.url
    UserFactory(username="studio", is_staff=True)
    UserFactory(username="anna")
    UserFactory(username="ben", email="ben@example.org")
    page = new_page(height=900)
    seen = watch(page, base)
    log_in(page, base, "studio")

    # New campaign, from the home page's button.
    page.click("text=New campaign")
    page.fill("#id_title", "Portraits, round one")
    page.fill("#id_instructions", "Look at the **faces** first.\n\n- then the hands")
    page.wait_for_selector("#instructions-preview strong")
    assert page.inner_text("#instructions-preview strong") == "faces"
    page.check("#id_criteria-1-include")  # aesthetics
    page.fill("#id_criteria-5-key", "hands")
    page.fill("#id_criteria-5-question", "Which image draws hands better?")
    page.check("#id_criteria-5-include")
    page.check("#id_criteria-5-allow_tie")
    shot(page, "campaign_new")
    page.click("text=Create campaign")
    page.wait_for_selector("text=Campaign created as a draft")
    campaign = Campaign.objects.get()
    assert [c["key"] for c in campaign.criteria] == ["overall", "aesthetics", "hands"]
    assert campaign.status == Campaign.Status.DRAFT

    # It cannot open with nothing to judge, and says so.
    page.click("text=Open for annotators")
    page.wait_for_selector("text=has nothing to judge yet")
    shot(page, "campaign_settings")

    # Prompts: a bad paste names its line; a good one and an uploaded file are added.
    page.click("nav.tabs >> text=Prompts")
    page.fill("#id_text", "a red fox in fresh snow\n" + "x" * 2001)
    page.click("text=Add prompts")
    page.wait_for_selector("#prompt-errors")
    assert "line 2:" in page.inner_text("#prompt-errors")
    page.fill("#id_text", f"a red fox in fresh snow\n{LONG_PROMPT}")
    page.click("text=Add prompts")
    page.wait_for_selector("text=2 prompts added")
    page.wait_for_selector("text=1 of them probably run past the 77 tokens")
    upload = tmp_path / "more.jsonl"
    upload.write_bytes(JSONL)
    page.set_input_files("#id_file", str(upload))
    page.click("button:has-text('Upload')")
    page.wait_for_selector("text=1 prompts added")
    assert Prompt.objects.filter(campaign=campaign).count() == 3
    shot(page, "prompts")

    # Members: existing people by username and e-mail, then new annotator accounts.
    page.click("nav.tabs >> text=Members")
    page.fill("#id_people", "anna\nben@example.org")
    page.select_option("#id_role", "annotator")
    page.click("button:has-text('Add')")
    page.wait_for_selector("text=2 added")
    page.fill("#id_usernames", "rater01\nrater02")
    page.click("text=Create accounts")
    page.wait_for_selector("#new-accounts")
    rows = page.eval_on_selector_all(
        "#new-accounts tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText))"
    )
    assert [name for name, _ in rows] == ["rater01", "rater02"]
    shot(page, "accounts_created")
    page.click("text=Done: back to the members")
    page.select_option(
        "#role-" + str(get_user_model().objects.get(username="anna").pk), "researcher"
    )
    page.click("tr[data-member=anna] button:has-text('Set')")
    page.wait_for_selector("text=anna is now researcher")
    shot(page, "members")
    roles = dict(Membership.objects.filter(campaign=campaign).values_list("user__username", "role"))
    assert roles == {
        "studio": "admin",
        "anna": "researcher",
        "ben": "annotator",
        "rater01": "annotator",
        "rater02": "annotator",
    }

    # The dashboard links back to these pages.
    page.click("nav.tabs >> text=Dashboard")
    page.wait_for_selector("nav.tabs >> text=Settings")

    # The API docs and the error pages.
    page.goto(f"{base}/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    shot(page, "api_docs", full_page=False)
    page.goto(f"{base}/campaigns/999999/")
    shot(page, "error_404")

    # A new annotator logs in with the password shown once; the settings are not theirs.
    rater_page = new_page()
    rater_seen = watch(rater_page, base)
    rater_page.goto(f"{base}/accounts/login/")
    rater_page.fill("#id_username", rows[0][0])
    rater_page.fill("#id_password", rows[0][1])
    rater_page.click("button[type=submit]")
    rater_page.wait_for_selector("text=Portraits, round one")
    rater_page.goto(f"{base}/campaigns/{campaign.pk}/settings/")
    assert "Your account cannot open this page" in rater_page.inner_text("main")
    shot(rater_page, "error_403")

    assert seen == {"csp": [], "errors": [], "offsite": []}
    assert rater_seen == {"csp": [], "errors": [], "offsite": []}
