"""Counters under concurrent submits: PostgreSQL only (SQLite serialises writers)."""

import random
import threading

import pytest
from django.db import connection, connections

from annotate.models import Comparison, Judgment
from annotate.quality.models import Rating
from annotate.quality.rater_stats import COUNTERS, stats_compute, stored_counters
from annotate.services.assignments import assignment_next
from annotate.services.judgments import judgment_submit
from tests.annotate.quality.crowd import models_of, random_clicker
from tests.factories import annotator, campaign_with_comparisons


@pytest.mark.django_db(transaction=True)
def test_counters_stay_exact_under_concurrent_submits():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: row locks and concurrent transactions")
    # No evaluation tasks: nothing should leave the test for a broker.
    campaign = campaign_with_comparisons(prompts=24, overlap=4, qc_policy={"evaluate_every": 10**6})
    users = [annotator(campaign) for _ in range(8)]
    models = models_of(campaign)
    errors: list[BaseException] = []
    start = threading.Barrier(len(users))

    def work(user, seed):
        rng = random.Random(seed)
        try:
            start.wait()
            while (assignment := assignment_next(campaign=campaign, annotator=user)) is not None:
                answers = random_clicker(assignment, models, rng)
                judgment_submit(assignment=assignment, answers=answers, duration_ms=1000)
        except BaseException as error:  # reported below; a thread must not die silently
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(u, i)) for i, u in enumerate(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Judgment.objects.count() == 24 * 4
    assert set(Comparison.objects.values_list("done", flat=True)) == {4}
    computed = stats_compute(campaign=campaign)
    stored = stored_counters(campaign=campaign)
    for annotator_id, figures in computed.items():
        for name in (*COUNTERS, "speed_hist"):
            assert stored[annotator_id][name] == figures[name], (annotator_id, name)
    # Every ordered pair of preference ratings on a unit, once per side.
    expected = 0
    for comparison in Comparison.objects.all():
        m = Rating.objects.filter(comparison=comparison, value__lt=3).count()
        expected += m * (m - 1)
    assert sum(f["co_pairs"] for f in computed.values()) == expected > 0
