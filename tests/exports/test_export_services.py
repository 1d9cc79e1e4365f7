"""export_build's guarantees: a consistent snapshot, and failures recorded on the row."""

import pytest

from annotate.models import Judgment
from exports.models import Export
from exports.services import export_build, export_create

pytestmark = pytest.mark.django_db


def test_a_change_between_the_passes_restarts_the_build_on_a_consistent_snapshot(small_campaign):
    export = export_create(
        requested_by=None, campaign=small_campaign, format="pickapic", enqueue=False
    )
    victim = Judgment.objects.order_by("id").first()
    calls = []

    def block_a_judgment_once_counted(done, total):
        # After the counting pass of the first attempt, quality control flags a judgment.
        calls.append(done)
        if done == total // 2 and not Judgment.objects.filter(excluded=True).exists():
            Judgment.objects.filter(pk=victim.pk).update(excluded=True)

    export = export_build(export=export, progress=block_a_judgment_once_counted)
    assert export.status == Export.Status.FINISHED, export.error
    assert export.manifest["counts"]["excluded"] == {"excluded_flag": 1}
    assert export.manifest["counts"]["judgments_included"] == 5
    assert len(calls) > 2  # it ran again


def test_an_unwritable_export_root_fails_the_export_with_the_reason(
    small_campaign, settings, tmp_path
):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    settings.EXPORT_ROOT = blocker / "exports"
    export = export_create(
        requested_by=None, campaign=small_campaign, format="jsonl", enqueue=False
    )
    export = export_build(export=export)
    assert export.status == Export.Status.FAILED
    assert export.error.startswith("Cannot write exports under <path>: ")
    assert export.error.endswith("Choose a writable folder.")
    assert str(tmp_path) not in export.error


def test_only_a_pending_export_can_be_built(small_campaign):
    from pickwise.errors import ApplicationError

    export = export_create(
        requested_by=None, campaign=small_campaign, format="jsonl", enqueue=False
    )
    export_build(export=export)
    with pytest.raises(ApplicationError) as error:
        export_build(export=export)
    assert (
        error.value.message
        == f"Export {export.pk} is finished; only a pending export can be built."
    )


def test_comparison_images_forgotten_between_batches_are_read_again(
    judged_campaign, settings, monkeypatch
):
    from exports import context

    # A tiny memory and tiny batches: the memory is cleared while rows still need images.
    monkeypatch.setattr(context, "IMAGE_MEMORY", 2)
    settings.EXPORT_BATCH_ROWS = 5
    export = export_create(
        requested_by=None, campaign=judged_campaign, format="pickapic", enqueue=False
    )
    export = export_build(export=export)
    assert export.status == Export.Status.FINISHED, export.error
    assert export.manifest["counts"]["judgments_included"] == 48


def test_gold_and_repeats_are_left_out_of_training_formats_and_counted(small_campaign):
    first, second = Judgment.objects.order_by("id")[:2]
    Judgment.objects.filter(pk=first.pk).update(is_gold=True)
    Judgment.objects.filter(pk=second.pk).update(is_repeat=True)
    # Asking to keep them changes nothing for a training format...
    export = export_create(
        requested_by=None,
        campaign=small_campaign,
        format="pickapic",
        policy={"exclude_gold": False, "exclude_repeats": False},
        enqueue=False,
    )
    assert (export.policy["exclude_gold"], export.policy["exclude_repeats"]) == (True, True)
    export = export_build(export=export)
    assert export.manifest["counts"]["excluded"] == {"gold": 1, "repeat": 1}
    # ...while the audit format keeps them when asked.
    audit = export_create(
        requested_by=None,
        campaign=small_campaign,
        format="jsonl",
        policy={"exclude_gold": False, "exclude_repeats": False},
        enqueue=False,
    )
    audit = export_build(export=audit)
    assert audit.manifest["counts"]["excluded"] == {}
    assert audit.manifest["counts"]["judgments_included"] == 6
