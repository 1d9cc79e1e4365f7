"""The training API: who may start, read and cancel jobs, and what bad input gets back."""

import pytest

from pickwise.model_folders import ERROR_MODEL_FOLDER_UNAVAILABLE
from tests.factories import campaign_with_comparisons, user_as
from tests.training.jobs_support import TINY_OPTIONS, finished_export
from training.models import TrainingJob
from training.services.jobs import training_job_create
from training.services.runs import Progress, training_job_claim, training_progress_save

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("training_dirs")]
URL = "/api/training-jobs/"


@pytest.fixture
def export(db):
    return finished_export(prompts=4)


@pytest.fixture
def campaign(db):
    """For refusals decided before any export is read."""
    return campaign_with_comparisons(prompts=1)


def body(export, pipeline_layout_dir, **extra):
    return {
        "export": export.pk,
        "pretrained": str(pipeline_layout_dir),
        "options": TINY_OPTIONS,
        **extra,
    }


def as_user(api_client, campaign, who):
    user = user_as(campaign, who)
    if user is not None:
        api_client.force_authenticate(user)
    return user


@pytest.mark.parametrize("who", ["researcher", "admin"])
def test_a_researcher_or_admin_starts_a_job_and_it_is_queued_on_commit(
    api_client, export, pipeline_layout_dir, who, django_capture_on_commit_callbacks
):
    as_user(api_client, export.campaign, who)
    with django_capture_on_commit_callbacks(execute=False) as sends:
        response = api_client.post(
            URL, body(export, pipeline_layout_dir, method="mapo"), format="json"
        )
    assert response.status_code == 202, response.json()
    data = response.json()
    assert (data["status"], data["method"], data["mode"]) == ("queued", "mapo", "lora")
    assert data["progress"]["total_steps"] == TINY_OPTIONS["max_train_steps"]
    assert data["campaign"] == export.campaign_id
    assert [(s.func.__self__.name, s.args) for s in sends] == [("training.run_job", (data["id"],))]


@pytest.mark.parametrize(
    ("who", "status"),
    [("anonymous", 401), ("annotator", 403), ("outsider", 404), ("site_researcher", 202)],
)
def test_start_refuses_who_may_not_read_the_export(
    api_client, export, pipeline_layout_dir, who, status
):
    as_user(api_client, export.campaign, who)
    response = api_client.post(URL, body(export, pipeline_layout_dir), format="json")
    assert response.status_code == status
    assert TrainingJob.objects.count() == (1 if status == 202 else 0)


def test_start_refuses_another_campaigns_export_as_missing(api_client, export, pipeline_layout_dir):
    other = campaign_with_comparisons(prompts=2)
    as_user(api_client, other, "researcher")
    response = api_client.post(URL, body(export, pipeline_layout_dir), format="json")
    assert response.status_code == 404
    assert not TrainingJob.objects.exists()


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"export": "one", "pretrained": "/x"},
        {"export": 1},
        {"export": 1, "pretrained": "/x", "method": "ppo"},
        {"export": 1, "pretrained": "/x", "mode": "half"},
        {"export": 1, "pretrained": "/x", "options": [1, 2]},
        {"export": 1, "pretrained": "/x", "options": {f"o{i}": 1 for i in range(65)}},
        {"export": 1, "pretrained": "x" * 1001},
    ],
)
def test_start_refuses_malformed_input(api_client, campaign, payload):
    as_user(api_client, campaign, "researcher")
    response = api_client.post(URL, payload, format="json")
    assert response.status_code == 400
    assert not TrainingJob.objects.exists()


def test_bad_input_fails_at_start_with_the_reason(
    api_client, export, pipeline_layout_dir, tmp_path
):
    as_user(api_client, export.campaign, "researcher")
    missing = tmp_path / "gone"
    response = api_client.post(
        URL, body(export, pipeline_layout_dir, pretrained=str(missing)), format="json"
    )
    assert response.status_code == 400
    assert response.json() == {
        "detail": ERROR_MODEL_FOLDER_UNAVAILABLE.format(field="pretrained"),
        "code": "model_unavailable",
    }
    response = api_client.post(
        URL, body(export, pipeline_layout_dir, options={"resolution": 30}), format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_options"
    assert "resolution must be a positive multiple of 8, not 30." in response.json()["detail"]

    ties = finished_export(prompts=4, ties_only=True)
    response = api_client.post(URL, body(ties, pipeline_layout_dir), format="json")
    assert response.status_code == 404  # another campaign: this researcher cannot see it
    as_user(api_client, ties.campaign, "researcher")
    response = api_client.post(URL, body(ties, pipeline_layout_dir), format="json")
    assert (response.status_code, response.json()["code"]) == (400, "no_pairs")


def test_the_job_page_shows_progress_and_the_series_to_readers_only(
    api_client, export, pipeline_layout_dir
):
    job = training_job_create(
        export=export, pretrained=str(pipeline_layout_dir), options=TINY_OPTIONS
    )
    claimed = training_job_claim(job_id=job.pk, worker="w")
    training_progress_save(
        job=claimed,
        progress=Progress(
            step=2,
            latest={"loss": 0.69},
            warnings=[],
            rows=[(1, {"loss": 0.7, "lr": 1e-5}), (2, {"loss": 0.69, "lr": 1e-5})],
        ),
    )
    as_user(api_client, export.campaign, "researcher")
    data = api_client.get(f"{URL}{job.pk}/").json()
    assert data["progress"] == {
        "step": 2,
        "total_steps": 4,
        "percent": 50,
        "latest": {"loss": 0.69},
        "heartbeat_at": data["progress"]["heartbeat_at"],
    }
    assert data["series"]["step"] == [1, 2] and data["series"]["loss"] == [0.7, 0.69]
    assert data["series"]["reward_margin"] == [None, None]
    assert data["evaluation"] is None

    for who, status in (("annotator", 403), ("outsider", 404), ("anonymous", 401)):
        api_client.force_authenticate(None)
        as_user(api_client, export.campaign, who)
        assert api_client.get(f"{URL}{job.pk}/").status_code == status
        assert api_client.post(f"{URL}{job.pk}/cancel/").status_code == status
    as_user(api_client, export.campaign, "researcher")
    assert api_client.get(f"{URL}999999/").status_code == 404


def test_cancel_flags_a_running_job_and_refuses_a_finished_one(
    api_client, export, pipeline_layout_dir
):
    job = training_job_create(
        export=export, pretrained=str(pipeline_layout_dir), options=TINY_OPTIONS
    )
    training_job_claim(job_id=job.pk, worker="w")
    as_user(api_client, export.campaign, "admin")
    response = api_client.post(f"{URL}{job.pk}/cancel/")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["cancel_requested"]) == ("running", True)
    TrainingJob.objects.filter(pk=job.pk).update(status="done")
    response = api_client.post(f"{URL}{job.pk}/cancel/")
    assert (response.status_code, response.json()["code"]) == (409, "job_finished")


@pytest.mark.parametrize(
    ("method", "url"),
    [("get", URL), ("delete", f"{URL}1/"), ("get", f"{URL}1/cancel/"), ("put", f"{URL}1/")],
)
def test_wrong_methods_are_refused(api_client, campaign, method, url):
    as_user(api_client, campaign, "researcher")
    assert getattr(api_client, method)(url).status_code == 405


def test_evaluate_refuses_a_job_that_has_not_finished(api_client, export, pipeline_layout_dir):
    job = training_job_create(
        export=export, pretrained=str(pipeline_layout_dir), options=TINY_OPTIONS
    )
    as_user(api_client, export.campaign, "researcher")
    response = api_client.post(f"{URL}{job.pk}/evaluate/", {}, format="json")
    assert (response.status_code, response.json()["code"]) == (409, "job_not_done")
    response = api_client.post(f"{URL}{job.pk}/evaluate/", {"steps": 0}, format="json")
    assert response.status_code == 400
    api_client.force_authenticate(None)
    as_user(api_client, export.campaign, "annotator")
    assert api_client.post(f"{URL}{job.pk}/evaluate/", {}, format="json").status_code == 403


def test_start_refuses_a_model_folder_outside_the_model_roots(
    api_client, export, pipeline_layout_dir, settings, tmp_path
):
    settings.PICKWISE_MODEL_ROOTS = [tmp_path / "models"]
    as_user(api_client, export.campaign, "researcher")
    for pretrained in (str(pipeline_layout_dir), "/nonexistent/secret"):
        response = api_client.post(
            URL, body(export, pipeline_layout_dir, pretrained=pretrained), format="json"
        )
        assert response.status_code == 400
        assert response.json() == {
            "detail": ERROR_MODEL_FOLDER_UNAVAILABLE.format(field="pretrained"),
            "code": "model_unavailable",
        }
    assert not TrainingJob.objects.exists()
