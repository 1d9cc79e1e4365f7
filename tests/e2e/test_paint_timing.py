"""Key press (or tap) to the next task fully painted, at desktop and phone size.

Prints p50 and max over 20 answers per size; bench/annotate_paint.py runs this module and
bench/RESULTS.md holds the figures. The answers are given at a person's pace: each after
the next task is reserved and its images are loaded, as they are while someone looks.
"""

import os
import statistics

import pytest

from annotate.models import Judgment
from tests.e2e.helpers import log_in, make_campaign, member, wait_for_task, wait_until_sent

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    # A measurement, not a check: bench/annotate_paint.py runs it; `make test` leaves it out.
    pytest.mark.skipif(
        not os.environ.get("PICKWISE_BENCH"), reason="a benchmark: bench/annotate_paint.py"
    ),
]

ITEMS = 20
SIZES = {
    "desktop 1280x860, keys": {"width": 1280, "height": 860},
    "phone 390x844, taps": {"width": 390, "height": 844, "has_touch": True, "is_mobile": True},
}


@pytest.mark.parametrize("size", list(SIZES))
def test_key_press_to_next_task_painted(live_server, new_page, size):
    campaign = make_campaign(prompts=ITEMS + 3)
    user = member(campaign, "timer")
    page = new_page(**SIZES[size])
    log_in(page, live_server.url, "timer", next_path=f"/campaigns/{campaign.pk}/annotate/")
    task_id = wait_for_task(page)
    touch = SIZES[size].get("has_touch", False)
    for index in range(ITEMS):
        page.wait_for_function("() => window.pickwise.aheadReady()")
        # A quick look: half a second on each task (taps sooner after the last paint count
        # as the second half of a double tap, which is ignored).
        page.wait_for_timeout(500)
        if touch:
            page.locator("#criteria .choice >> nth=0").tap()
        else:
            page.keyboard.press("ArrowLeft" if index % 2 else "ArrowRight")
        task_id = wait_for_task(page, after=task_id)
    page.wait_for_function(f"() => window.pickwise.metrics.keyToNext.length === {ITEMS}")
    times = page.evaluate("() => window.pickwise.metrics.keyToNext")
    wait_until_sent(page)

    assert Judgment.objects.filter(annotator=user).count() == ITEMS
    assert all(t > 0 for t in times)
    print(
        f"\nkey press to next task painted, {size}: n={len(times)} "
        f"p50={statistics.median(times):.1f} ms max={max(times):.1f} ms"
    )
