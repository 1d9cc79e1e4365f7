"""Migration 0012 adds the recent figures and the drift check to existing rater stats: a row
written before it reads as no recent evidence and no check open afterwards."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("annotate", "0011_active_sampling")]
AFTER = [("annotate", "0012_rater_stats_drift")]


@pytest.mark.django_db(transaction=True)
def test_existing_rater_stats_start_with_no_recent_evidence_and_no_check():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    user = old.get_model("auth", "User").objects.create(username="before-0012")
    owner = old.get_model("auth", "User").objects.create(username="owner-0012")
    campaign = old.get_model("annotate", "Campaign").objects.create(
        slug="c-0012", title="c", created_by=owner
    )
    old.get_model("annotate", "RaterStats").objects.create(
        campaign=campaign, annotator=user, judgments=120, co_pairs=240, co_agree=150
    )
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    stats = new.get_model("annotate", "RaterStats").objects.get(annotator_id=user.pk)
    assert (stats.judgments, stats.co_pairs, stats.co_agree) == (120, 240, 150)
    assert (stats.co_recent_pairs, stats.co_recent_agree, stats.speed_recent_log) == (0, 0, None)
    assert (stats.drift_cusum, stats.drift_check_at) == (0, 0)
    assert (stats.drift_gold_correct, stats.drift_gold_wrong) == (0, 0)
