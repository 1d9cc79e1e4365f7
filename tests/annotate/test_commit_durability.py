"""Which annotation writes wait for the disk at COMMIT (PostgreSQL's synchronous_commit)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotate.services.assignments import assignment_next
from tests.factories import annotator, campaign_with_comparisons

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL setting"),
]

ASYNC = "SET LOCAL synchronous_commit TO OFF"


def test_next_commits_without_waiting_for_the_disk_and_submit_waits(api_client):
    campaign = campaign_with_comparisons(prompts=2)
    api_client.force_authenticate(annotator(campaign))

    with CaptureQueriesContext(connection) as issued:
        task = api_client.post(f"/api/campaigns/{campaign.pk}/next/", {}, format="json")
    with CaptureQueriesContext(connection) as answered:
        submitted = api_client.post(
            f"/api/assignments/{task.data['id']}/submit/",
            {"answers": {"overall": task.data["images"][0]["uid"]}},
            format="json",
        )

    assert task.status_code == 200 and submitted.status_code == 201
    assert [q["sql"] for q in issued.captured_queries].count(ASYNC) == 1
    assert ASYNC not in [q["sql"] for q in answered.captured_queries]


def test_inside_a_callers_transaction_next_leaves_its_durability_alone():
    from django.db import transaction

    campaign = campaign_with_comparisons(prompts=2)
    user = annotator(campaign)

    with transaction.atomic(), CaptureQueriesContext(connection) as issued:
        assert assignment_next(campaign=campaign, annotator=user) is not None

    assert ASYNC not in [q["sql"] for q in issued.captured_queries]
