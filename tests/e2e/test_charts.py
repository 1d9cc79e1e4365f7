"""The dashboard's agreement chart in a real browser, with ratings at known times.

uPlot draws its axes on a canvas, so the test reads the plot's x scale (public) and the tick
labels it drew (the axis's `_values`, as uPlot keeps them) from the instance dashboard.js
keeps on the plot's box.
"""

from datetime import UTC, datetime, timedelta

import pytest

from annotate.models import Membership
from annotate.quality.models import Rating
from tests.annotate.quality.crowd import prefers, run_crowd
from tests.e2e.helpers import PASSWORD, make_campaign, member

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

SMALL_POLICY = {"alpha_min_units": 4, "alpha_window_units": 8, "bootstrap_replicates": 20}

_AXIS = """() => {
    const plot = document.querySelector("[data-plot]").plot;
    return {min: plot.scales.x.min, max: plot.scales.x.max, labels: plot.axes[0]._values};
}"""


def _rated_at(campaign, start: datetime, step: timedelta) -> list[datetime]:
    """Two raters judge every comparison; unit k's ratings then carry start + k * step."""
    run_crowd(campaign, [(member(campaign, f"r{i}"), prefers("model-a")) for i in range(2)])
    units = sorted(Rating.objects.filter(campaign=campaign).values_list("comparison", flat=True))
    times = []
    for k, comparison in enumerate(dict.fromkeys(units)):
        times.append(start + k * step)
        Rating.objects.filter(comparison=comparison).update(created_at=times[-1])
    return times


def _axis(browser, live_server, campaign) -> dict:
    member(campaign, "boss", role=Membership.Role.ADMIN)
    context = browser.new_context(timezone_id="UTC", viewport={"width": 1280, "height": 1000})
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/accounts/login/?next=/campaigns/{campaign.pk}/dashboard/")
        page.fill("#id_username", "boss")
        page.fill("#id_password", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("[data-plot] .uplot")
        return page.evaluate(_AXIS)
    finally:
        context.close()


def test_one_window_of_judgments_made_minutes_ago_spans_minutes_not_years(browser, live_server):
    campaign = make_campaign(prompts=6, overlap=2, qc_policy=SMALL_POLICY)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    times = _rated_at(campaign, start, timedelta(seconds=30))  # one window of 6 units
    axis = _axis(browser, live_server, campaign)
    end = times[-1].timestamp()
    assert axis["min"] <= end <= axis["max"]
    assert axis["max"] - axis["min"] <= 3600, axis
    labels = " ".join(axis["labels"])
    assert not any(str(year) in labels for year in range(start.year + 1, start.year + 4)), labels


def test_windows_at_known_times_give_an_axis_over_those_hours(browser, live_server):
    campaign = make_campaign(prompts=16, overlap=2, qc_policy=SMALL_POLICY)
    start = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)
    times = _rated_at(campaign, start, timedelta(minutes=15))  # windows end 11:45 and 13:45
    assert (times[7].hour, times[7].minute, times[15].hour, times[15].minute) == (11, 45, 13, 45)
    axis = _axis(browser, live_server, campaign)
    assert axis["min"] == pytest.approx(times[7].timestamp())
    assert axis["max"] == pytest.approx(times[15].timestamp())
    labels = " ".join(axis["labels"])
    assert "6/1/25" in labels and "12:00pm" in labels and "1:30pm" in labels, labels
