"""manage.py export_dataset: a synchronous export with a progress bar and clear errors."""

import io
import os
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from exports.models import Export
from tests.factories import campaign_with_comparisons

pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    out = io.StringIO()
    call_command("export_dataset", *args, stdout=out)
    return out.getvalue()


def test_it_writes_the_export_into_the_folder_with_progress(small_campaign, tmp_path):
    out = tmp_path / "pickapic"
    output = _run("--campaign", small_campaign.slug, "--format", "pickapic", "--out", str(out))
    assert "100% 12/12" in output
    assert "Wrote" in output
    assert (out / "README.md").exists() and (out / "manifest.json").exists()
    assert sorted(p.name for p in (out / "data").iterdir())[0].startswith("test-00000-of-")
    export = Export.objects.get()
    assert export.folder == str(out.resolve()) and export.status == "finished"


def test_no_images_leaves_the_jpeg_columns_empty(small_campaign, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "bare"
    _run("--campaign", small_campaign.slug, "--out", str(out), "--no-images", "--seed", "5")
    table = pq.read_table(next((out / "data").glob("train-*.parquet")))
    assert set(table.column("jpg_0").to_pylist()) == {b""}


def test_an_unknown_campaign_is_named(db, tmp_path):
    with pytest.raises(CommandError) as error:
        _run("--campaign", "nope", "--out", str(tmp_path / "x"))
    assert str(error.value) == "No campaign with slug 'nope'; see the campaign list for slugs."


def test_an_unknown_format_is_named(small_campaign, tmp_path):
    with pytest.raises(CommandError) as error:
        _run("--campaign", small_campaign.slug, "--format", "csv", "--out", str(tmp_path / "x"))
    assert (
        str(error.value)
        == "Unknown format 'csv'; choose one of: pickapic, ranked, image_preference, jsonl."
    )


def test_an_empty_result_says_what_to_change(db, tmp_path):
    campaign = campaign_with_comparisons(prompts=2)
    with pytest.raises(CommandError) as error:
        _run("--campaign", campaign.slug, "--out", str(tmp_path / "x"))
    assert str(error.value).startswith("Nothing to export: no judgment of campaign")
    assert "Include more rater states" in str(error.value)


def test_bad_states_are_refused(small_campaign, tmp_path):
    with pytest.raises(CommandError) as error:
        _run(
            "--campaign",
            small_campaign.slug,
            "--out",
            str(tmp_path / "x"),
            "--include-states",
            "active,blocked",
        )
    assert "blocked raters are never exported" in str(error.value)


def test_a_folder_that_is_not_empty_is_refused(small_campaign, tmp_path):
    out = tmp_path / "used"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(CommandError) as error:
        _run("--campaign", small_campaign.slug, "--out", str(out))
    assert str(error.value) == f"--out {out} exists and is not empty; choose a new folder."
    assert (out / "keep.txt").read_text() == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_folder_is_refused(small_campaign, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(CommandError) as error:
            _run("--campaign", small_campaign.slug, "--out", str(locked / "export"))
        assert "Choose a writable folder." in str(error.value)
    finally:
        locked.chmod(0o700)


def test_a_path_under_a_file_is_refused_as_unwritable(small_campaign, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = Path(blocker, "export")
    with pytest.raises(CommandError) as error:
        _run("--campaign", small_campaign.slug, "--out", str(out))
    assert str(error.value) == (
        f"--out {out} cannot be created: File exists. Choose a writable folder."
    )
