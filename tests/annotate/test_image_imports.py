import io
import struct
import uuid
import zipfile
import zlib
from datetime import UTC, datetime

import pytest
from django.db import IntegrityError
from PIL import Image as PILImage

from annotate.models import Assignment, Comparison, Image, Judgment, Membership, Prompt
from annotate.services.image_imports import (
    images_import,
    images_import_apply,
    images_import_check,
    messages,
)
from annotate.uploads import FORMAT_NOT_ALLOWED, NOT_AN_IMAGE
from pickwise.errors import ApplicationError
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


def _import(campaign, data: bytes, **kwargs):
    return images_import(campaign=campaign, source=io.BytesIO(data), **kwargs)


def _refused(campaign, data: bytes, **kwargs) -> ApplicationError:
    with pytest.raises(ApplicationError) as error:
        _import(campaign, data, **kwargs)
    return error.value


def _media_files(settings) -> list:
    root = settings.MEDIA_ROOT
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _encoded(fmt: str) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", (8, 8), (10, 20, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge canvas: a decompression bomb's calling card."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def _one_image_zip(data: bytes, name: str = "a.png") -> bytes:
    rows = [{"prompt": "a cat", "file": name, "model_name": "m"}]
    return zip_bytes({"manifest.csv": manifest_csv(rows), name: data})


# Zip and folder --------------------------------------------------------------------------


def test_a_zip_import_adds_prompts_images_and_builds_their_comparisons():
    campaign = CampaignFactory()
    result = _import(campaign, manifest_zip(prompts=2))
    assert result.as_dict() == {
        "prompts_created": 2,
        "prompts_existing": 0,
        "images_created": 4,
        "images_existing": 0,
        "raters_created": 0,
        "judgments_created": 0,
        "judgments_existing": 0,
        "comparisons_created": 2,
    }
    image = Image.objects.get(prompt__text="prompt 0", model_name="model-b")
    assert (image.source, image.seed, image.width) == ("imported", 1, 16)
    assert image.file.read()[:4] == b"\x89PNG"
    assert Comparison.objects.filter(campaign=campaign, role="regular").count() == 2


def test_importing_the_same_zip_twice_doubles_nothing():
    campaign = CampaignFactory()
    data = manifest_zip(prompts=2)
    _import(campaign, data)
    again = _import(campaign, data)
    assert (again.prompts_created, again.prompts_existing) == (0, 2)
    assert (again.images_created, again.images_existing, again.comparisons_created) == (0, 4, 0)
    assert Prompt.objects.count() == 2 and Image.objects.count() == 4
    assert Comparison.objects.count() == 2


def test_a_zipped_folder_with_its_manifest_inside_is_accepted():
    campaign = CampaignFactory()
    rows = [{"prompt": "a dog", "file": "./pics/x.png", "model_name": "m"}]
    data = zip_bytes({"upload/manifest.csv": manifest_csv(rows), "upload/pics/x.png": png_bytes()})
    assert _import(campaign, data).images_created == 1


def test_no_build_leaves_comparisons_to_later():
    campaign = CampaignFactory()
    result = _import(campaign, manifest_zip(prompts=1), build=False)
    assert result.images_created == 2 and result.comparisons_created == 0
    assert not Comparison.objects.exists()


def test_a_folder_import_reads_the_manifest_and_files_in_it(tmp_path):
    campaign = CampaignFactory()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.png").write_bytes(png_bytes())
    (tmp_path / "b.png").write_bytes(png_bytes())
    rows = [
        {"prompt": "a tree", "file": "sub/a.png", "model_name": "m1", "seed": "3"},
        {"prompt": "a tree", "file": "b.png", "model_name": "m2", "seed": ""},
    ]
    (tmp_path / "manifest.csv").write_bytes(manifest_csv(rows))
    result = images_import(campaign=campaign, source=tmp_path)
    assert (result.images_created, result.comparisons_created) == (2, 1)
    assert sorted(Image.objects.values_list("seed", flat=True), key=str) == [3, None]


def test_a_folder_import_cannot_read_outside_the_folder(tmp_path):
    campaign = CampaignFactory()
    folder = tmp_path / "import"
    folder.mkdir()
    secret = tmp_path / "secret.png"
    secret.write_bytes(png_bytes())
    (folder / "link.png").symlink_to(secret)
    rows = [
        {"prompt": "p", "file": "../secret.png", "model_name": "m"},
        {"prompt": "p", "file": str(secret), "model_name": "m"},
        {"prompt": "p", "file": "link.png", "model_name": "m"},
    ]
    (folder / "manifest.csv").write_bytes(manifest_csv(rows))
    with pytest.raises(ApplicationError) as error:
        images_import(campaign=campaign, source=folder)
    assert error.value.extra["errors"] == [
        {"line": 2, "error": "'../secret.png' points outside the import folder."},
        {"line": 3, "error": f"{str(secret)!r} points outside the import folder."},
        {"line": 4, "error": "'link.png' points outside the import folder."},
    ]
    assert not Image.objects.exists()


def test_a_zip_member_name_with_dots_never_reaches_the_disk(tmp_path):
    campaign = CampaignFactory()
    rows = [{"prompt": "p", "file": "../../escape.png", "model_name": "m"}]
    data = zip_bytes({"manifest.csv": manifest_csv(rows), "../../escape.png": png_bytes()})
    # Read by name from memory: it imports, and nothing is written outside storage.
    assert _import(campaign, data).images_created == 1
    assert not (tmp_path.parent / "escape.png").exists()
    assert Image.objects.get().file.name.startswith("images/")


def test_it_refuses_an_archive_without_a_manifest():
    error = _refused(CampaignFactory(), zip_bytes({"a.png": png_bytes()}))
    assert (error.code, error.message) == ("no_manifest", messages.NO_MANIFEST)


def test_it_refuses_a_manifest_without_the_needed_columns():
    data = zip_bytes({"manifest.csv": b"text,path\nx,a.png\n", "a.png": png_bytes()})
    error = _refused(CampaignFactory(), data)
    assert error.message == messages.MANIFEST_COLUMNS.format(missing="prompt, file, model_name")


def test_it_reports_every_bad_line_and_imports_nothing(settings):
    campaign = CampaignFactory()
    rows = [
        {"prompt": "fine", "file": "ok.png", "model_name": "m"},
        {"prompt": "missing file", "file": "nowhere.png", "model_name": "m"},
        {"prompt": "text", "file": "notes.txt", "model_name": "m"},
        {"prompt": "", "file": "ok.png", "model_name": "m"},
        {"prompt": "gif", "file": "a.gif", "model_name": "m"},
        {"prompt": "bmp", "file": "a.bmp", "model_name": "m"},
        {"prompt": "cut", "file": "cut.png", "model_name": "m"},
        {"prompt": "seed", "file": "ok.png", "model_name": "m", "seed": "x"},
    ]
    whole = png_bytes(size=(64, 64))
    files = {
        "ok.png": png_bytes(),
        "notes.txt": b"hello",
        "a.gif": _encoded("GIF"),
        "a.bmp": _encoded("BMP"),
        "cut.png": whole[: len(whole) // 2],
    }
    error = _refused(campaign, zip_bytes({"manifest.csv": manifest_csv(rows), **files}))
    assert error.code == "invalid_rows"
    assert error.message == messages.BAD_ROWS.format(count=7)
    assert error.extra["errors"] == [
        {"line": 3, "error": "'nowhere.png' is not a file in the import."},
        {"line": 4, "error": f"notes.txt: {NOT_AN_IMAGE}"},
        {"line": 5, "error": messages.BAD_PROMPT},
        {"line": 6, "error": "a.gif: " + FORMAT_NOT_ALLOWED.format(fmt="GIF")},
        {"line": 7, "error": "a.bmp: " + FORMAT_NOT_ALLOWED.format(fmt="BMP")},
        {"line": 8, "error": f"cut.png: {NOT_AN_IMAGE}"},
        {"line": 9, "error": messages.BAD_SEED},
    ]
    assert not Prompt.objects.exists() and not Image.objects.exists()
    assert _media_files(settings) == []


def test_a_corrupt_archive_member_is_a_bad_line():
    data = bytearray(_one_image_zip(png_bytes(size=(64, 64))))
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("a.png")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    data[start + 5 : start + 25] = bytes(20)  # inside the deflated stream
    error = _refused(CampaignFactory(), bytes(data))
    assert error.extra["errors"] == [
        {"line": 2, "error": messages.CORRUPT_MEMBER.format(name="a.png")}
    ]


def test_it_reports_at_most_fifty_errors_but_counts_them_all():
    rows = [{"prompt": f"p{i}", "file": f"missing{i}.png", "model_name": "m"} for i in range(60)]
    error = _refused(CampaignFactory(), zip_bytes({"manifest.csv": manifest_csv(rows)}))
    assert error.message == messages.BAD_ROWS.format(count=60)
    assert len(error.extra["errors"]) == 50


def test_it_refuses_a_decompression_bomb():
    error = _refused(CampaignFactory(), _one_image_zip(_png_claiming(20000, 20000)))
    assert error.code == "invalid_rows"
    assert "pixels" in error.extra["errors"][0]["error"]
    assert not Image.objects.exists()


def test_it_refuses_images_over_the_pixel_limit_in_settings(settings):
    settings.PICKWISE_MAX_IMAGE_PIXELS = 100
    error = _refused(CampaignFactory(), _one_image_zip(png_bytes(size=(16, 16))))
    assert error.extra["errors"] == [
        {"line": 2, "error": "a.png: Image has 256 pixels; the limit is 100."}
    ]


def test_it_refuses_an_archive_with_too_many_members(settings):
    settings.PICKWISE_MAX_ARCHIVE_MEMBERS = 3
    error = _refused(CampaignFactory(), manifest_zip(prompts=2))  # 5 members
    assert error.message == messages.TOO_MANY_MEMBERS.format(count=5, limit=3)


def test_it_refuses_an_archive_that_expands_past_the_limit_before_reading_it(settings):
    settings.PICKWISE_MAX_UPLOAD_BYTES = 100_000
    data = zip_bytes({"manifest.csv": b"prompt,file,model_name\n", "zeros.bin": bytes(200_000)})
    assert len(data) < 5_000  # small on the wire, large when expanded
    error = _refused(CampaignFactory(), data)
    assert (error.code, error.status) == ("too_large", 413)
    assert error.message == messages.ARCHIVE_TOO_LARGE.format(
        size=200_000 + len(b"prompt,file,model_name\n"), limit=100_000
    )


def test_it_refuses_files_that_are_neither_zip_nor_parquet():
    error = _refused(CampaignFactory(), png_bytes())
    assert (error.code, error.message) == ("unknown_format", messages.UNKNOWN_SOURCE)


def test_it_refuses_more_rows_than_the_limit(settings):
    settings.PICKWISE_MAX_IMPORT_ROWS = 3
    error = _refused(CampaignFactory(), manifest_zip(prompts=2))
    assert error.message == messages.TOO_MANY_ROWS.format(count=4, limit=3)


# Pick-a-Pic parquet ------------------------------------------------------------------------


def test_a_parquet_import_keeps_image_uids_and_merges_repeated_ones():
    campaign = CampaignFactory()
    first = pickapic_row("a red cube")
    # The same image 0 meets a new image in a second row: one image, two pairs.
    second = pickapic_row(
        "a red cube", image_0_uid=first["image_0_uid"].upper(), jpg_0=first["jpg_0"]
    )
    result = _import(campaign, pickapic_parquet([first, second]))
    assert (result.prompts_created, result.images_created) == (1, 3)
    uids = {str(u) for u in Image.objects.values_list("uid", flat=True)}
    assert uids == {first["image_0_uid"], first["image_1_uid"], second["image_1_uid"]}
    assert not Judgment.objects.exists()
    assert Image.objects.get(uid=first["image_0_uid"]).model_name == "model-a"


def test_a_parquet_file_with_datasets_image_structs_imports_too():
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = pickapic_row("a cat")
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    columns = {
        c: pa.array([row[c]])
        for c in ("caption", "model_0", "model_1", "image_0_uid", "image_1_uid")
    }
    for side in ("jpg_0", "jpg_1"):
        columns[side] = pa.array([{"bytes": row[side], "path": None}], type=image)
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    assert _import(CampaignFactory(), buffer.getvalue()).images_created == 2


def test_a_parquet_uid_used_elsewhere_gets_a_fresh_one():
    other = CampaignFactory()
    row = pickapic_row("a blue ball")
    _import(other, pickapic_parquet([row]))
    campaign = CampaignFactory()
    _import(campaign, pickapic_parquet([row]))
    mine = Image.objects.filter(prompt__campaign=campaign)
    assert mine.count() == 2
    assert not {str(i.uid) for i in mine} & {row["image_0_uid"], row["image_1_uid"]}


def test_labels_become_judgments_by_pseudonymous_imported_raters():
    campaign = CampaignFactory(overlap=2)
    a = pickapic_row("a cat", user_id=11)
    rows = [
        a,
        # Another rater prefers image 1 of the same pair; a third calls it a tie.
        {**a, "label_0": 0.0, "label_1": 1.0, "best_image_uid": a["image_1_uid"], "user_id": 12},
        {**a, "label_0": 0.5, "label_1": 0.5, "best_image_uid": "none", "user_id": 13},
        pickapic_row("a dog", user_id=11, created_at=None),
    ]
    result = _import(campaign, pickapic_parquet(rows), with_labels=True)
    assert (result.raters_created, result.judgments_created, result.comparisons_created) == (
        3,
        4,
        2,
    )

    comparison = Comparison.objects.get(prompt__text="a cat")
    # Three judgments with overlap 2: wanted grows so the database's check holds.
    assert (comparison.done, comparison.wanted, comparison.in_flight) == (3, 3, 0)
    assert comparison.status == "full"
    answers = {
        j.annotator.username: j.answers["overall"]
        for j in Judgment.objects.filter(comparison=comparison).select_related("annotator")
    }
    prefix = f"imported-{campaign.pk}-"
    assert answers == {
        prefix + "11": a["image_0_uid"],
        prefix + "12": a["image_1_uid"],
        prefix + "13": "tie",
    }
    judgment = Judgment.objects.get(comparison=comparison, annotator__username=prefix + "11")
    assert judgment.created_at == datetime(2023, 5, 1, 12, 30, tzinfo=UTC)
    assert judgment.presented == [a["image_0_uid"], a["image_1_uid"]]
    assert judgment.assignment.state == Assignment.State.SUBMITTED
    rater = judgment.annotator
    assert not rater.is_active and not rater.has_usable_password()
    membership = Membership.objects.get(user=rater, campaign=campaign)
    assert (membership.role, membership.gate_state, membership.issued) == ("annotator", "active", 2)
    dog = Comparison.objects.get(prompt__text="a dog")
    assert (dog.done, dog.wanted, dog.status) == (1, 2, "open")


def test_importing_labels_twice_adds_no_judgments():
    campaign = CampaignFactory()
    rows = [pickapic_row("a cat", user_id=1), pickapic_row("a dog", user_id=2)]
    data = pickapic_parquet(rows)
    _import(campaign, data, with_labels=True)
    again = _import(campaign, data, with_labels=True)
    assert (again.judgments_created, again.judgments_existing, again.raters_created) == (0, 2, 0)
    assert Judgment.objects.count() == 2
    assert sorted(Comparison.objects.values_list("done", flat=True)) == [1, 1]


def test_a_raters_second_judgment_of_a_pair_is_a_repeat_of_the_first():
    campaign = CampaignFactory()
    row = pickapic_row("a cat", user_id=5)
    again = {**row, "label_0": 0.0, "label_1": 1.0, "best_image_uid": row["image_1_uid"]}
    _import(campaign, pickapic_parquet([row, again]), with_labels=True)
    first, second = Judgment.objects.order_by("id")
    assert (first.is_repeat, second.is_repeat) == (False, True)
    assert second.assignment.repeat_of == first
    assert Comparison.objects.get().done == 1  # repeats do not count toward overlap


def test_imported_judgments_add_to_a_comparison_already_in_use():
    campaign = CampaignFactory(overlap=3)
    row = pickapic_row("a cat")
    _import(campaign, pickapic_parquet([row]))  # images and the comparison, no labels
    Comparison.objects.update(in_flight=2, status="open")
    _import(campaign, pickapic_parquet([row]), with_labels=True)
    comparison = Comparison.objects.get()
    assert (comparison.done, comparison.in_flight, comparison.wanted) == (1, 2, 3)
    assert comparison.status == "full"


def test_it_reports_bad_parquet_rows_by_index():
    campaign = CampaignFactory(
        criteria=[{"key": "overall", "question": "Better?", "allow_tie": False}]
    )
    good = pickapic_row("fine")
    same = pickapic_row("same")
    rows = [
        good,
        pickapic_row("tie", label_0=0.5, label_1=0.5),
        pickapic_row("odd", label_0=0.3, label_1=0.7),
        {**same, "image_1_uid": same["image_0_uid"]},
        pickapic_row("gif", jpg_1=_encoded("GIF")),
        pickapic_row("who", user_id=None),
        pickapic_row("moved", image_0_uid=good["image_0_uid"], best_image_uid=good["image_0_uid"]),
        pickapic_row("liar", best_image_uid=str(uuid.uuid4())),
    ]
    error = _refused(campaign, pickapic_parquet(rows), with_labels=True)
    assert error.extra["errors"] == [
        {"row": 1, "error": messages.TIE_NOT_ALLOWED.format(key="overall")},
        {"row": 2, "error": messages.BAD_LABELS},
        {"row": 3, "error": messages.SAME_IMAGE},
        {"row": 4, "error": "jpg_1: " + FORMAT_NOT_ALLOWED.format(fmt="GIF")},
        {"row": 5, "error": messages.BAD_USER_ID},
        {
            "row": 6,
            "error": f"image uid {good['image_0_uid']} appears with another caption in row 0.",
        },
        {"row": 7, "error": messages.BEST_DISAGREES},
    ]
    assert not Image.objects.exists() and not Judgment.objects.exists()


def test_parquet_needs_its_columns():
    data = pickapic_parquet([pickapic_row()], drop=("user_id", "jpg_1"))
    error = _refused(CampaignFactory(), data, with_labels=True)
    assert error.message == messages.PARQUET_COLUMNS.format(missing="jpg_1, user_id")


def test_parquet_is_for_pairwise_campaigns_only():
    campaign = CampaignFactory(kind="ranking", k=3)
    error = _refused(campaign, pickapic_parquet([pickapic_row()]))
    assert (error.code, error.message) == ("wrong_kind", messages.PARQUET_NEEDS_PAIRWISE)


def test_a_corrupt_parquet_file_is_refused_cleanly():
    data = pickapic_parquet([pickapic_row()])
    error = _refused(CampaignFactory(), data[:100] + b"\x00" * 50 + data[150:])
    assert error.message == messages.NOT_A_PARQUET
    assert _refused(CampaignFactory(), data[: len(data) // 2]).message == messages.NOT_A_PARQUET


def test_labels_come_only_with_parquet():
    error = _refused(CampaignFactory(), manifest_zip(prompts=1), with_labels=True)
    assert error.message == messages.LABELS_NEED_PARQUET


def test_imported_raters_never_take_over_a_real_account(django_user_model):
    campaign = CampaignFactory()
    django_user_model.objects.create_user(f"imported-{campaign.pk}-7", password="pw-12345678")
    error = _refused(campaign, pickapic_parquet([pickapic_row(user_id=7)]), with_labels=True)
    assert error.message == messages.ACCOUNT_TAKEN.format(username=f"imported-{campaign.pk}-7")


# All or nothing ----------------------------------------------------------------------------


def test_a_uid_taken_between_check_and_write_gets_a_fresh_one():
    campaign = CampaignFactory()
    row = pickapic_row("a cat")
    plan = images_import_check(campaign=campaign, source=io.BytesIO(pickapic_parquet([row])))
    # Between the check and the write, another import takes image 1's uid.
    other = CampaignFactory()
    _import(other, manifest_zip(prompts=1))
    Image.objects.filter(prompt__campaign=other, model_name="model-a").update(
        uid=row["image_1_uid"]
    )
    result = images_import_apply(plan=plan)
    assert result.images_created == 2
    mine = Image.objects.filter(prompt__campaign=campaign)
    assert str(mine.get(model_name="model-a").uid) == row["image_0_uid"]
    assert str(mine.get(model_name="model-b").uid) != row["image_1_uid"]


def test_a_write_that_fails_leaves_no_rows_and_no_new_files(settings, django_user_model):
    campaign = CampaignFactory()
    dog = pickapic_row("a dog")
    _import(campaign, pickapic_parquet([dog]))
    plan = images_import_check(
        campaign=campaign,
        source=io.BytesIO(pickapic_parquet([pickapic_row("a cat"), dog])),
        with_labels=True,
    )
    # Between the check and the write, the rater is handed the dog pair live: the
    # database refuses a second regular assignment of it, after the cat's files are stored.
    rater = django_user_model.objects.create(username=f"imported-{campaign.pk}-7", is_active=False)
    rater.set_unusable_password()
    rater.save()
    Assignment.objects.create(
        campaign=campaign,
        comparison=Comparison.objects.get(campaign=campaign),
        annotator=rater,
        presented=[dog["image_0_uid"], dog["image_1_uid"]],
        issued_at=datetime.now(UTC),
        expires_at=datetime.now(UTC),
    )
    files_before = _media_files(settings)
    images_before = Image.objects.count()
    with pytest.raises(IntegrityError):
        images_import_apply(plan=plan)
    assert Image.objects.count() == images_before
    assert not Prompt.objects.filter(campaign=campaign, text="a cat").exists()
    assert not Judgment.objects.exists()
    assert _media_files(settings) == files_before


def _two_image_folder(folder):
    (folder / "a.png").write_bytes(png_bytes())
    (folder / "b.png").write_bytes(png_bytes())
    rows = [
        {"prompt": "a tree", "file": "a.png", "model_name": "m1"},
        {"prompt": "a tree", "file": "b.png", "model_name": "m2"},
    ]
    (folder / "manifest.csv").write_bytes(manifest_csv(rows))


def test_a_file_changed_after_the_check_undoes_the_files_already_written(tmp_path, settings):
    _two_image_folder(tmp_path)
    plan = images_import_check(campaign=CampaignFactory(), source=tmp_path)
    (tmp_path / "b.png").write_bytes(png_bytes())  # other bytes than were checked
    with pytest.raises(ApplicationError) as error:
        images_import_apply(plan=plan)
    assert error.value.message == messages.FILE_CHANGED.format(name="b.png")
    assert not Image.objects.exists() and not Prompt.objects.exists()
    assert _media_files(settings) == []  # a.png had been stored; it is gone again


def test_a_file_removed_after_the_check_fails_the_import_cleanly(tmp_path, settings):
    _two_image_folder(tmp_path)
    plan = images_import_check(campaign=CampaignFactory(), source=tmp_path)
    (tmp_path / "b.png").unlink()
    with pytest.raises(ApplicationError) as error:
        images_import_apply(plan=plan)
    assert error.value.message == messages.FILE_GONE.format(
        problem="'b.png' is not a file in the import."
    )
    assert not Image.objects.exists() and _media_files(settings) == []


# Queries -----------------------------------------------------------------------------------


def test_a_labelled_parquet_import_costs_a_fixed_number_of_queries_not_some_per_row(
    django_assert_max_num_queries,
):
    # 60 rows, 120 images, 60 judgments by 5 raters: all within one chunk of 500.
    campaign = CampaignFactory()
    rows = [pickapic_row(f"prompt {i}", user_id=i % 5) for i in range(60)]
    data = pickapic_parquet(rows)
    with django_assert_max_num_queries(40):
        result = _import(campaign, data, with_labels=True)
    assert (result.images_created, result.judgments_created) == (120, 60)
    with django_assert_max_num_queries(25):
        again = _import(campaign, data, with_labels=True)
    assert (again.images_created, again.judgments_existing) == (0, 60)


def test_a_zip_import_costs_a_fixed_number_of_queries_not_some_per_image(
    django_assert_max_num_queries,
):
    campaign = CampaignFactory()
    with django_assert_max_num_queries(20):
        result = _import(campaign, manifest_zip(prompts=60))
    assert (result.images_created, result.comparisons_created) == (120, 60)
