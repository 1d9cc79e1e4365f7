"""Text from campaigns is shown as text: a script in a prompt or instructions never runs."""

import pytest

from tests.e2e.helpers import log_in, make_campaign, member, wait_for_task

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

PAYLOAD = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def test_a_script_in_a_prompt_or_instructions_does_not_run(live_server, new_page):
    campaign = make_campaign(
        prompts=2,
        texts=[f"a cat {PAYLOAD}"],
        title=f"Evil {PAYLOAD}",
        instructions=f"Be careful.\n\n{PAYLOAD}\n\n[click](javascript:window.__pwned=3)",
    )
    member(campaign, "target")
    page = new_page()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, live_server.url, "target", next_path=f"/campaigns/{campaign.pk}/")
    assert "Be careful." in page.inner_text(".instructions")
    page.goto(f"{live_server.url}/campaigns/{campaign.pk}/annotate/")
    wait_for_task(page)
    page.click(".instructions-inline summary")
    links = page.locator(".instructions-inline a")
    if links.count():
        links.first.click()
    assert PAYLOAD in page.inner_text("#prompt")
    page.goto(f"{live_server.url}/")
    assert page.evaluate("() => window.__pwned") is None
    assert dialogs == []
