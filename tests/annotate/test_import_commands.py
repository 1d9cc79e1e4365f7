import io

import pytest
from django.core.management import CommandError, call_command

from annotate.models import Comparison, Image, Judgment, Prompt
from annotate.services.image_imports.messages import BAD_PROMPT
from tests.factories import (
    CampaignFactory,
    manifest_csv,
    manifest_zip,
    pickapic_parquet,
    pickapic_row,
    png_bytes,
    zip_bytes,
)

pytestmark = pytest.mark.django_db


def _run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def _refused(*args) -> str:
    with pytest.raises(CommandError) as error:
        call_command(*args, stdout=io.StringIO())
    return str(error.value)


# import_prompts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("p.txt", "a cat\na dog\n"),
        ("p.csv", "text,source\na cat,x\na dog,y\n"),
        ("p.json", '["a cat", {"text": "a dog"}]'),
        ("p.jsonl", '{"text": "a cat"}\n"a dog"\n'),
    ],
)
def test_import_prompts_reads_each_format(tmp_path, name, content):
    campaign = CampaignFactory()
    path = tmp_path / name
    path.write_text(content)
    out = _run("import_prompts", "--campaign", campaign.slug, str(path))
    assert f"2 prompts added to {campaign.slug}, 0 were there already." in out
    assert sorted(Prompt.objects.values_list("text", flat=True)) == ["a cat", "a dog"]


def test_import_prompts_takes_the_format_from_the_option(tmp_path):
    campaign = CampaignFactory()
    path = tmp_path / "prompts.data"
    path.write_text('{"text": "a cat"}\n')
    _run("import_prompts", "--campaign", campaign.slug, str(path), "--format", "jsonl")
    assert Prompt.objects.get().text == "a cat"


def test_import_prompts_twice_doubles_nothing(tmp_path):
    campaign = CampaignFactory()
    path = tmp_path / "p.txt"
    path.write_text("a cat\na dog\n")
    _run("import_prompts", "--campaign", campaign.slug, str(path))
    out = _run("import_prompts", "--campaign", campaign.slug, str(path))
    assert "0 prompts added" in out and "2 were there already" in out
    assert Prompt.objects.count() == 2


def test_import_prompts_lists_the_bad_lines_and_imports_nothing(tmp_path):
    campaign = CampaignFactory()
    path = tmp_path / "p.jsonl"
    path.write_text('{"text": "fine"}\n{"text": 3}\nnot json\n')
    message = _refused("import_prompts", "--campaign", campaign.slug, str(path))
    assert message.splitlines() == [
        "2 bad row(s); nothing was imported.",
        "  line 2: 'text' must be a non-empty string.",
        "  line 3: Invalid JSON: Expecting value.",
    ]
    assert not Prompt.objects.exists()


def test_import_prompts_refuses_a_csv_without_text(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("prompt\na cat\n")
    message = _refused("import_prompts", "--campaign", CampaignFactory().slug, str(path))
    assert message == "The CSV file needs a 'text' column."


def test_import_prompts_refuses_unknown_campaigns_and_missing_files(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("a cat\n")
    assert _refused("import_prompts", "--campaign", "nope", str(path)) == (
        "No campaign with slug 'nope'."
    )
    missing = tmp_path / "missing.txt"
    assert _refused("import_prompts", "--campaign", CampaignFactory().slug, str(missing)) == (
        f"{missing} is not a file."
    )


def test_import_prompts_refuses_a_file_over_the_upload_limit(tmp_path, settings):
    settings.PICKWISE_MAX_UPLOAD_BYTES = 10
    path = tmp_path / "p.txt"
    path.write_text("a cat\na dog\na bird\n")
    message = _refused("import_prompts", "--campaign", CampaignFactory().slug, str(path))
    assert message == f"{path} is 19 bytes; the limit is 10."


# import_images -----------------------------------------------------------------------------


def test_import_images_from_a_zip_prints_progress_and_counts(tmp_path):
    campaign = CampaignFactory()
    path = tmp_path / "images.zip"
    path.write_bytes(manifest_zip(prompts=2))
    out = _run("import_images", "--campaign", campaign.slug, str(path))
    assert "Checking every row and image..." in out
    assert "Writing 2 prompts, 4 images..." in out
    assert "images_created 4" in out and "comparisons_created 2" in out
    assert Image.objects.count() == 4 and Comparison.objects.count() == 2


def test_import_images_from_a_folder_without_building(tmp_path):
    campaign = CampaignFactory()
    (tmp_path / "a.png").write_bytes(png_bytes())
    (tmp_path / "b.png").write_bytes(png_bytes())
    rows = [
        {"prompt": "a cat", "file": "a.png", "model_name": "m1"},
        {"prompt": "a cat", "file": "b.png", "model_name": "m2"},
    ]
    (tmp_path / "manifest.csv").write_bytes(manifest_csv(rows))
    _run("import_images", "--campaign", campaign.slug, str(tmp_path), "--no-build")
    assert Image.objects.count() == 2 and not Comparison.objects.exists()


def test_import_images_from_parquet_with_labels(tmp_path):
    campaign = CampaignFactory()
    path = tmp_path / "pairs.parquet"
    row = pickapic_row("a cat", label_0=0.0, label_1=1.0)
    path.write_bytes(pickapic_parquet([row]))
    out = _run("import_images", "--campaign", campaign.slug, str(path), "--with-labels")
    assert "Writing 1 prompts, 2 images, 1 judgments..." in out
    assert Judgment.objects.get().answers == {"overall": row["image_1_uid"]}


def test_import_images_check_writes_nothing(tmp_path):
    campaign = CampaignFactory()
    path = tmp_path / "images.zip"
    path.write_bytes(manifest_zip(prompts=1))
    out = _run("import_images", "--campaign", campaign.slug, str(path), "--check")
    assert "All good: 1 prompts, 2 images. Nothing was written." in out
    assert not Prompt.objects.exists() and not Image.objects.exists()


def test_import_images_twice_doubles_nothing(tmp_path):
    campaign = CampaignFactory()
    path = tmp_path / "images.zip"
    path.write_bytes(manifest_zip(prompts=1))
    _run("import_images", "--campaign", campaign.slug, str(path))
    out = _run("import_images", "--campaign", campaign.slug, str(path))
    assert "images_created 0, images_existing 2" in out
    assert Image.objects.count() == 2


def test_import_images_lists_bad_lines_and_exits_non_zero(tmp_path, settings):
    campaign = CampaignFactory()
    rows = [
        {"prompt": "a cat", "file": "a.png", "model_name": "m"},
        {"prompt": "a dog", "file": "missing.png", "model_name": "m"},
        {"prompt": "", "file": "a.png", "model_name": "m"},
    ]
    path = tmp_path / "images.zip"
    path.write_bytes(zip_bytes({"manifest.csv": manifest_csv(rows), "a.png": png_bytes()}))
    message = _refused("import_images", "--campaign", campaign.slug, str(path))
    assert message.splitlines() == [
        "2 bad row(s); nothing was imported.",
        "  line 3: 'missing.png' is not a file in the import.",
        f"  line 4: {BAD_PROMPT}",
    ]
    assert not Prompt.objects.exists()
    media = settings.MEDIA_ROOT
    assert not media.exists() or not any(p.is_file() for p in media.rglob("*"))


def test_import_images_reports_parquet_rows_by_index(tmp_path):
    campaign = CampaignFactory()
    path = tmp_path / "pairs.parquet"
    path.write_bytes(pickapic_parquet([pickapic_row(), pickapic_row(label_0=2.0, label_1=0.0)]))
    message = _refused("import_images", "--campaign", campaign.slug, str(path), "--with-labels")
    assert message.splitlines()[1] == ("  row 1: label_0 and label_1 must be 1/0, 0/1 or 0.5/0.5.")


def test_import_images_refuses_missing_paths_and_unknown_files(tmp_path):
    slug = CampaignFactory().slug
    missing = tmp_path / "nothing.zip"
    assert _refused("import_images", "--campaign", slug, str(missing)) == (
        f"{missing} does not exist."
    )
    odd = tmp_path / "notes.txt"
    odd.write_text("hello")
    assert _refused("import_images", "--campaign", slug, str(odd)) == (
        "Upload a .zip with manifest.csv or a Pick-a-Pic .parquet file."
    )


def test_import_images_from_a_folder_without_a_manifest(tmp_path):
    message = _refused("import_images", "--campaign", CampaignFactory().slug, str(tmp_path))
    assert message == "The import has no manifest.csv."
