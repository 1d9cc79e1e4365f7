"""The Server-Timing header the load benchmark reads (PICKWISE_SERVER_TIMING)."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import annotator, campaign_with_comparisons

pytestmark = pytest.mark.django_db(transaction=True)

FIELD = re.compile(r'(\w+);dur=([0-9.]+)(?:;desc="(\d+)")?')


def next_task(api_client, settings, *, timing: bool):
    settings.PICKWISE_SERVER_TIMING = timing
    campaign = campaign_with_comparisons(prompts=2)
    api_client.force_authenticate(annotator(campaign))
    with CaptureQueriesContext(connection) as queries:
        response = api_client.post(f"/api/campaigns/{campaign.pk}/next/", {}, format="json")
    assert response.status_code == 200
    return response, queries


def test_it_sends_no_header_unless_the_setting_is_on(api_client, settings):
    response, _ = next_task(api_client, settings, timing=False)

    assert "Server-Timing" not in response


def test_it_breaks_a_request_down_into_wall_cpu_sql_commit_connect_and_gc_time(
    api_client, settings
):
    response, queries = next_task(api_client, settings, timing=True)

    fields = {
        name: (float(ms), desc) for name, ms, desc in FIELD.findall(response["Server-Timing"])
    }
    assert set(fields) == {"app", "cpu", "db", "commit", "connect", "gc"}
    # Every statement the request ran on a cursor went through the wrapper (SQLite's BEGIN
    # IMMEDIATE too). The plain BEGIN and COMMIT Django logs are transaction control, not
    # cursor statements; COMMIT is timed on its own.
    statements = [
        q
        for q in queries.captured_queries
        if q["sql"] not in ("BEGIN", "COMMIT") and not q["sql"].startswith(("SAVEPOINT", "RELEASE"))
    ]
    assert int(fields["db"][1]) == len(statements)
    # Parts of one request's wall time cannot add up to more than it.
    assert fields["db"][0] + fields["commit"][0] + fields["connect"][0] <= fields["app"][0]
    assert fields["cpu"][0] <= fields["app"][0] + 1  # thread_time ticks coarser than perf_counter
