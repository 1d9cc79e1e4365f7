"""The images page: generation with picked models, image imports, and their live lists."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotate.models import ImageImport
from annotate.services.image_imports import messages as import_messages
from annotate.services.image_imports.jobs import DUPLICATE_UPLOAD, image_import_run
from frontend.image_views import FILE_TOO_LARGE
from generation.models import GenerationJob, Generator
from generation.services.jobs import ERROR_JOB_RUNNING, ERROR_NO_PROMPTS
from generation.services.sync import generation_job_run_sync
from tests.factories import (
    CampaignFactory,
    PromptFactory,
    manifest_csv,
    manifest_zip,
    png_bytes,
    user_as,
    zip_bytes,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign():
    campaign = CampaignFactory()
    for text in ("two red circles", "a green tree on the right"):
        PromptFactory(campaign=campaign, text=text)
    return campaign


@pytest.fixture
def admin_client(client, campaign):
    client.force_login(user_as(campaign, "admin"))
    return client


def url(campaign, name: str = "") -> str:
    return reverse(f"frontend:campaign-images{'-' + name if name else ''}", args=[campaign.pk])


def generate_form(**extra) -> dict:
    return {
        "sources": ["procedural:faithful", "procedural:careless"],
        "seeds_per_prompt": 2,
        "steps": 1,
        "width": 64,
        "height": 64,
        "scheduler": "",
        "guidance": 0,
        **extra,
    }


def upload(data: bytes, name: str = "batch.zip") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def test_the_page_offers_model_folders_from_the_roots_and_the_drawn_models(
    admin_client, campaign, settings, tmp_path
):
    root = tmp_path / "models"
    (root / "sd-base").mkdir(parents=True)
    (root / "sd-base" / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    (tmp_path / "elsewhere").mkdir()
    settings.PICKWISE_MODEL_ROOTS = [root]
    html = admin_client.get(url(campaign)).content.decode()
    assert f'value="{(root / "sd-base").resolve()}"' in html
    assert 'value="procedural:faithful"' in html and 'value="procedural:careless"' in html
    assert "elsewhere" not in html
    assert "DPMSolverMultistepScheduler" in html


def test_generation_starts_with_the_picked_models_and_reuses_them_next_time(
    admin_client, campaign, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(url(campaign, "generate"), generate_form())
    assert response.status_code == 302 and response["Location"] == url(campaign)
    assert len(callbacks) == 1  # the batches go to the generate queue once committed
    job = GenerationJob.objects.get()
    assert sorted(g.source for g in job.generators.all()) == [
        "procedural:careless",
        "procedural:faithful",
    ]
    assert (job.seeds_per_prompt, job.items.count()) == (2, 8)
    assert {(g.steps, g.width, g.height) for g in job.generators.all()} == {(1, 64, 64)}

    # The same pick while the job runs is refused with the running job's number.
    response = admin_client.post(url(campaign, "generate"), generate_form())
    assert response.status_code == 409
    assert ERROR_JOB_RUNNING.format(job_id=job.pk) in response.content.decode()
    assert GenerationJob.objects.count() == 1

    generation_job_run_sync(job=job, worker="test")
    response = admin_client.post(url(campaign, "generate"), generate_form(seeds_per_prompt=3))
    assert response.status_code == 302
    assert Generator.objects.count() == 2  # the same settings are the same models
    response = admin_client.post(url(campaign, "generate"), generate_form(width=128))
    assert response.status_code == 409  # the second job still runs
    assert Generator.objects.count() == 2  # and nothing of the refused one was kept


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sources": ["/etc"]}, "Select a valid choice. /etc is not one of the available choices."),
        ({"sources": []}, "This field is required."),
        ({"steps": 0}, "Ensure this value is greater than or equal to 1."),
        ({"seeds_per_prompt": 65}, "Ensure this value is less than or equal to 64."),
        ({"width": 100}, "Ensure this value is a multiple of step size 8"),
        ({"scheduler": "FancyScheduler"}, "Select a valid choice."),
        ({"steps": "many"}, "Enter a whole number."),
    ],
)
def test_bad_generation_settings_are_shown_and_start_nothing(
    admin_client, campaign, change, message
):
    response = admin_client.post(url(campaign, "generate"), generate_form(**change))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not GenerationJob.objects.exists() and not Generator.objects.exists()


def test_a_campaign_without_prompts_is_told_to_add_some(client):
    empty = CampaignFactory()
    client.force_login(user_as(empty, "admin"))
    response = client.post(url(empty, "generate"), generate_form())
    assert response.status_code == 400
    assert ERROR_NO_PROMPTS in response.content.decode()
    assert not Generator.objects.exists()


def test_an_upload_is_queued_and_its_progress_and_counts_are_listed(
    admin_client, campaign, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(
            url(campaign, "import"), {"file": upload(manifest_zip()), "build": "on"}
        )
    assert response.status_code == 302 and len(callbacks) == 1
    job = ImageImport.objects.get()
    html = admin_client.get(url(campaign, "jobs")).content.decode()
    assert "batch.zip" in html and 'hx-trigger="every 3s"' in html

    assert image_import_run(job_id=job.pk, worker="test") == "succeeded"
    html = admin_client.get(url(campaign, "jobs")).content.decode()
    assert "hx-trigger" not in html and 'data-status="succeeded"' in html
    assert "4 images, 2 comparisons" in html


def test_the_same_file_twice_while_the_first_is_pending_is_refused(admin_client, campaign):
    data = manifest_zip()
    assert admin_client.post(url(campaign, "import"), {"file": upload(data)}).status_code == 302
    response = admin_client.post(url(campaign, "import"), {"file": upload(data)})
    first = ImageImport.objects.get()
    assert response.status_code == 409
    assert DUPLICATE_UPLOAD.format(id=first.pk) in response.content.decode()


def test_bad_rows_are_listed_with_their_line_numbers(admin_client, campaign):
    rows = [
        {"prompt": "fine", "file": "ok.png", "model_name": "m"},
        {"prompt": "missing file", "file": "nowhere.png", "model_name": "m"},
        {"prompt": "seed", "file": "ok.png", "model_name": "m", "seed": "x"},
    ]
    data = zip_bytes({"manifest.csv": manifest_csv(rows), "ok.png": png_bytes()})
    admin_client.post(url(campaign, "import"), {"file": upload(data)})
    image_import_run(job_id=ImageImport.objects.get().pk, worker="test")
    html = admin_client.get(url(campaign)).content.decode()
    assert import_messages.BAD_ROWS.format(count=2) in html
    assert "line 3: &#x27;nowhere.png&#x27; is not a file in the import." in html
    assert f"line 4: {import_messages.BAD_SEED}" in html


def test_a_file_that_is_not_an_import_is_refused_at_once(admin_client, campaign):
    response = admin_client.post(url(campaign, "import"), {"file": upload(b"hello", "notes.txt")})
    assert response.status_code == 400
    assert import_messages.UNKNOWN_SOURCE in response.content.decode()
    response = admin_client.post(url(campaign, "import"), {"file": upload(b"PK\x03\x04junk")})
    assert response.status_code == 400
    assert not ImageImport.objects.exists()


def test_an_empty_or_missing_file_is_a_form_error(admin_client, campaign):
    response = admin_client.post(url(campaign, "import"), {})
    assert response.status_code == 400 and "This field is required." in response.content.decode()
    response = admin_client.post(url(campaign, "import"), {"file": upload(b"")})
    assert response.status_code == 400 and "The submitted file is empty." in (
        response.content.decode()
    )


def test_an_oversized_upload_is_refused_before_it_is_kept(admin_client, campaign, settings):
    data = manifest_zip()
    settings.PICKWISE_MAX_UPLOAD_BYTES = len(data) - 1
    response = admin_client.post(url(campaign, "import"), {"file": upload(data)})
    assert response.status_code == 413
    assert FILE_TOO_LARGE.format(size=len(data), limit=len(data) - 1) in (response.content.decode())
    assert not ImageImport.objects.exists()


@pytest.mark.parametrize(
    ("who", "status"), [("researcher", 403), ("annotator", 403), ("outsider", 404)]
)
def test_only_campaign_admins_use_the_images_page(client, campaign, who, status):
    client.force_login(user_as(campaign, who))
    for name in ("", "jobs"):
        assert client.get(url(campaign, name)).status_code == status
    assert client.post(url(campaign, "generate"), generate_form()).status_code == status
    response = client.post(url(campaign, "import"), {"file": upload(manifest_zip())})
    assert response.status_code == status
    assert not GenerationJob.objects.exists() and not ImageImport.objects.exists()


def test_anonymous_visitors_are_sent_to_log_in(client, campaign):
    for name in ("", "jobs"):
        response = client.get(url(campaign, name))
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_wrong_methods_are_refused(admin_client, campaign):
    assert admin_client.get(url(campaign, "generate")).status_code == 405
    assert admin_client.get(url(campaign, "import")).status_code == 405
    assert admin_client.post(url(campaign)).status_code == 405


def test_a_generator_with_other_settings_or_extras_is_not_reused(db):
    from generation.services.generators import generator_get_or_create

    settings = {"steps": 1, "width": 64, "height": 64, "guidance": 0.0}
    first = generator_get_or_create(source="procedural:sloppy", **settings)
    assert generator_get_or_create(source="procedural:sloppy", **settings) == first
    wider = generator_get_or_create(source="procedural:sloppy", **{**settings, "width": 128})
    assert (first.name, wider.name) == ("sloppy", "sloppy-2")
    Generator.objects.filter(pk=first.pk).update(extra={"eta": 0.5})  # changed by hand since
    again = generator_get_or_create(source="procedural:sloppy", **settings)
    assert again.pk not in (first.pk, wider.pk) and again.name == "sloppy-3"
