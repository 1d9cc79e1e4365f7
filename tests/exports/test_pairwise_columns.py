"""The column path of pairwise Pick-a-Pic exports writes the very bytes of the row path."""

import pytest

from annotate.models import Judgment, Membership
from exports.writers import pickapic
from tests.exports.helpers import build
from tests.factories import annotator

pytestmark = pytest.mark.django_db


def both_paths(campaign, monkeypatch, tmp_path, **options) -> tuple[dict, dict]:
    """The manifest of the same export built by the column path, then by the row path."""
    columns = build(campaign, folder=tmp_path / "columns", **options)
    with monkeypatch.context() as patch:
        patch.setattr(pickapic, "pairwise_counting_pass", lambda ctx: None)
        rows = build(campaign, folder=tmp_path / "rows", **options)
    return columns.manifest, rows.manifest


@pytest.fixture
def mixed_campaign(judged_campaign):
    """judged_campaign (preferences, ties, both_bad) with a blocked, a qualifying rater, a
    flagged judgment, gold and a repeat."""
    blocked, qualifying = annotator(judged_campaign), annotator(judged_campaign)
    first, second, third, fourth = Judgment.objects.order_by("id")[:4]
    Judgment.objects.filter(pk=first.pk).update(annotator=blocked)
    Judgment.objects.filter(pk=second.pk).update(annotator=qualifying)
    Judgment.objects.filter(pk=third.pk).update(excluded=True)
    Judgment.objects.filter(pk=fourth.pk).update(is_gold=True)
    Judgment.objects.filter(pk=Judgment.objects.order_by("-id").first().pk).update(is_repeat=True)
    Membership.objects.filter(user=blocked).update(gate_state=Membership.Gate.BLOCKED)
    Membership.objects.filter(user=qualifying).update(gate_state=Membership.Gate.QUALIFYING)
    return judged_campaign


@pytest.mark.parametrize("seed", [0, 11, 2**63 - 1])
def test_the_column_path_writes_the_bytes_of_the_row_path(
    mixed_campaign, monkeypatch, tmp_path, seed
):
    columns, rows = both_paths(mixed_campaign, monkeypatch, tmp_path, seed=seed)
    assert columns["files"] == rows["files"]
    assert columns["counts"] == rows["counts"]
    assert columns["counts"]["excluded"] == {
        "blocked_rater": 1,
        "both_bad": 23,  # 24 both_bad answers, the last one a repeat
        "excluded_flag": 1,
        "gold": 1,
        "repeat": 1,
        "state_not_included": 1,
    }


def test_the_paths_agree_on_tiny_batches_small_shards_and_images(
    mixed_campaign, monkeypatch, tmp_path, settings
):
    # Batches of 3 rows and shards of 96 KB: batches and files end in the middle of windows.
    settings.EXPORT_BATCH_ROWS = 3
    settings.EXPORT_SHARD_MAX_BYTES = 96 * 1024
    settings.PUBLIC_BASE_URL = "https://pickwise.example"
    columns, rows = both_paths(mixed_campaign, monkeypatch, tmp_path, seed=5)
    assert columns["files"] == rows["files"]
    assert columns["images_encoded"] == rows["images_encoded"] > 0
    assert len([f for f in columns["files"] if f["name"].startswith("data/train-")]) > 1


def test_an_answer_about_other_images_fails_the_export_with_its_id(small_campaign):
    from exports.models import Export
    from exports.services import export_build, export_create

    judgment = Judgment.objects.order_by("id").last()
    Judgment.objects.filter(pk=judgment.pk).update(
        answers={"overall": "00000000-0000-4000-8000-000000000000"}
    )
    export = export_create(
        requested_by=None, campaign=small_campaign, format="pickapic", enqueue=False
    )
    export = export_build(export=export)
    assert export.status == Export.Status.FAILED
    assert export.error == (
        f"ValueError: Judgment {judgment.pk} answers about images that are not its "
        "comparison's; the data is inconsistent."
    )
