"""The training pages: start a job on an export, follow it, cancel it, evaluate it."""

from pathlib import Path

import pytest

from annotate.models import Image
from annotate.services.assignments import assignment_next
from annotate.services.judgments import judgment_submit
from tests.factories import GeneratorFactory, annotator, campaign_with_comparisons, user_as
from tests.training.jobs_support import finished_export, pipeline_folder
from training.evaluation_design import wilson_width
from training.models import TrainingJob
from training.options import ERROR_RESOLUTION
from training.services.evaluation import ERROR_NOT_DONE
from training.services.jobs import ERROR_JOB_FINISHED
from training.services.runs import Progress, training_job_claim, training_progress_save

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("training_dirs")]


@pytest.fixture
def training_dirs(settings, tmp_path):
    settings.TRAINING_ROOT = tmp_path / "training"
    settings.EXPORT_ROOT = tmp_path / "exports"


@pytest.fixture
def model_root(settings, tmp_path):
    """One base pipeline folder in the server's only model root."""
    root = tmp_path / "models"
    (root / "sd-base").mkdir(parents=True)
    (root / "sd-base" / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    settings.PICKWISE_MODEL_ROOTS = [root]
    return root


@pytest.fixture
def export(db):
    return finished_export(prompts=4)


def log_in(client, campaign, who):
    user = user_as(campaign, who)
    if user is not None:
        client.force_login(user)
    return user


def job_on(export, **fields) -> TrainingJob:
    values = {"pretrained": "/models/base", "max_steps": 10, "output_dir": "/tmp/none"}
    return TrainingJob.objects.create(export=export, **{**values, **fields})


def start_form(model_root, **extra) -> dict:
    return {
        "pretrained": str((model_root / "sd-base").resolve()),
        "method": "dpo",
        "mode": "lora",
        "max_train_steps": 20,
        "train_batch_size": 2,
        "resolution": 64,
        "beta": 2500,
        **extra,
    }


def test_a_researcher_starts_training_from_the_form_and_lands_on_the_job_page(
    client, export, model_root, django_capture_on_commit_callbacks
):
    log_in(client, export.campaign, "researcher")
    page = client.get(f"/exports/{export.pk}/train/")
    assert page.status_code == 200
    assert str((model_root / "sd-base").resolve()) in page.content.decode()

    with django_capture_on_commit_callbacks() as queued:
        response = client.post(f"/exports/{export.pk}/train/", start_form(model_root))
    job = TrainingJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/training-jobs/{job.pk}/"
    assert len(queued) == 1  # the train task, sent once the job row is committed
    assert (job.method, job.mode, job.max_steps) == ("dpo", "lora", 20)
    assert job.options["beta"] == 2500 and job.options["resolution"] == 64
    assert "learning_rate" not in job.options  # blank: the trainer's default for LoRA


@pytest.mark.parametrize(
    ("who", "status"), [("annotator", 403), ("outsider", 404), ("site_researcher", 200)]
)
def test_the_start_form_is_for_those_who_may_read_the_export(
    client, export, model_root, who, status
):
    log_in(client, export.campaign, who)
    assert client.get(f"/exports/{export.pk}/train/").status_code == status
    response = client.post(f"/exports/{export.pk}/train/", start_form(model_root))
    assert response.status_code == (302 if status == 200 else status)
    assert TrainingJob.objects.count() == (1 if status == 200 else 0)


def test_anonymous_visitors_are_sent_to_log_in(client, export):
    response = client.get(f"/exports/{export.pk}/train/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pretrained": "/etc"}, "Select a valid choice."),
        ({"max_train_steps": "many"}, "Enter a whole number."),
        ({"resolution": 60}, "resolution must be a positive multiple of 8, not 60."),
        ({"mode": "full", "lora_rank": 4}, "lora_rank and lora_alpha apply to mode lora"),
    ],
)
def test_bad_settings_are_shown_on_the_form_and_start_nothing(
    client, export, model_root, change, message
):
    log_in(client, export.campaign, "researcher")
    response = client.post(f"/exports/{export.pk}/train/", start_form(model_root, **change))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not TrainingJob.objects.exists()


def test_an_empty_post_gets_the_form_back_with_what_is_missing(client, export, model_root):
    log_in(client, export.campaign, "researcher")
    response = client.post(f"/exports/{export.pk}/train/", {})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert not TrainingJob.objects.exists()


def test_an_unfinished_export_is_refused_with_the_reason(client, model_root):
    export = finished_export(prompts=4)
    export.status = "running"
    export.save(update_fields=["status"])
    log_in(client, export.campaign, "researcher")
    response = client.post(f"/exports/{export.pk}/train/", start_form(model_root))
    assert response.status_code == 400
    assert (
        f"Export {export.pk} is running; train on a finished export." in response.content.decode()
    )


def test_the_form_says_where_to_put_models_when_there_are_none(client, export, settings, tmp_path):
    settings.PICKWISE_MODEL_ROOTS = [tmp_path / "empty"]
    log_in(client, export.campaign, "researcher")
    page = client.get(f"/exports/{export.pk}/train/").content.decode()
    assert "No base model was found" in page and "PICKWISE_MODEL_ROOTS" in page


@pytest.mark.parametrize(("who", "status"), [("annotator", 403), ("outsider", 404)])
def test_job_pages_are_hidden_from_annotators_and_outsiders(client, export, who, status):
    job = job_on(export)
    log_in(client, export.campaign, who)
    for path in ("", "status/"):
        assert client.get(f"/training-jobs/{job.pk}/{path}").status_code == status
    for path in ("cancel/", "evaluate/"):
        assert client.post(f"/training-jobs/{job.pk}/{path}").status_code == status
    job.refresh_from_db()
    assert job.status == TrainingJob.Status.QUEUED and not job.cancel_requested


def test_the_job_page_carries_the_curves_and_polls_while_running(client, export):
    job = job_on(export)
    claimed = training_job_claim(job_id=job.pk, worker="w1")
    training_progress_save(
        job=claimed,
        progress=Progress(
            step=2,
            latest={"loss": 0.6931, "implicit_acc": 0.5},
            warnings=["winner and loser MSE both grew"],
            rows=[(1, {"loss": 0.7}), (2, {"loss": 0.6931, "implicit_acc": 0.5})],
        ),
    )
    log_in(client, export.campaign, "researcher")
    page = client.get(f"/training-jobs/{job.pk}/")
    html = page.content.decode()
    assert page.context["series"]["step"] == [1, 2]
    assert page.context["series"]["loss"] == [0.7, 0.6931]
    assert 'id="training-series"' in html and 'data-active="true"' in html
    assert "winner and loser MSE both grew" in html
    status = client.get(f"/training-jobs/{job.pk}/status/").content.decode()
    assert 'hx-trigger="every 3s"' in status and "Cancel training" in status

    job.status = TrainingJob.Status.DONE
    job.save(update_fields=["status"])
    status = client.get(f"/training-jobs/{job.pk}/status/").content.decode()
    assert "every 3s" not in status and "Cancel training" not in status
    # The finished job's answer brings the evaluation form in with it, out of band.
    assert 'id="evaluation"' in status and 'hx-swap-oob="true"' in status
    assert "Create evaluation campaign" in status


def test_a_running_jobs_status_leaves_the_evaluation_card_alone(client, export):
    job = job_on(export)
    log_in(client, export.campaign, "researcher")
    status = client.get(f"/training-jobs/{job.pk}/status/").content.decode()
    assert 'id="evaluation"' not in status and "hx-swap-oob" not in status


def test_cancel_stops_a_queued_job_and_explains_a_finished_one(client, export):
    queued, done = job_on(export), job_on(export, status=TrainingJob.Status.DONE)
    log_in(client, export.campaign, "researcher")
    assert client.get(f"/training-jobs/{queued.pk}/cancel/").status_code == 405
    response = client.post(f"/training-jobs/{queued.pk}/cancel/", follow=True)
    queued.refresh_from_db()
    assert queued.status == TrainingJob.Status.CANCELLED
    assert "Cancel requested." in response.content.decode()

    response = client.post(f"/training-jobs/{done.pk}/cancel/", follow=True)
    expected = ERROR_JOB_FINISHED.format(id=done.pk, status="done")
    assert expected in response.content.decode()
    done.refresh_from_db()
    assert done.status == TrainingJob.Status.DONE


def test_evaluation_is_offered_only_when_done_and_bad_settings_change_nothing(client, export):
    job = job_on(export)
    log_in(client, export.campaign, "researcher")
    assert (
        "Available once training has finished."
        in client.get(f"/training-jobs/{job.pk}/").content.decode()
    )
    settings = {"steps": 25, "guidance": 7.5, "overlap": 3, "seed": 0, "seeds_per_prompt": 1}
    response = client.post(f"/training-jobs/{job.pk}/evaluate/", settings, follow=True)
    assert ERROR_NOT_DONE.format(id=job.pk, status="queued") in response.content.decode()

    job.status = TrainingJob.Status.DONE
    job.save(update_fields=["status"])
    assert "Create evaluation campaign" in client.get(f"/training-jobs/{job.pk}/").content.decode()
    response = client.post(
        f"/training-jobs/{job.pk}/evaluate/",
        {**settings, "steps": 0},
        follow=True,
    )
    assert "Sampling steps: Ensure this value is greater than or equal to 1." in (
        response.content.decode()
    )
    job.refresh_from_db()
    assert job.evaluation_campaign is None


def test_the_job_page_shows_the_human_win_rate_with_its_interval(client, export):
    base, tuned = GeneratorFactory(name="page-base"), GeneratorFactory(name="page-tuned")
    campaign = campaign_with_comparisons(prompts=2, models=("page-base", "page-tuned"))
    job = job_on(
        export,
        status=TrainingJob.Status.DONE,
        evaluation_campaign=campaign,
        base_generator=base,
        tuned_generator=tuned,
    )
    log_in(client, export.campaign, "researcher")
    html = client.get(f"/training-jobs/{job.pk}/").content.decode()
    assert "No judgments yet." in html
    assert f"/campaigns/{campaign.pk}/dashboard/" in html

    # The card polls while its campaign collects judgments, and shows new ones when polled.
    card_url = f"/training-jobs/{job.pk}/evaluation/"
    assert f'hx-get="{card_url}"' in html
    rater = annotator(campaign)
    tuned = Image.objects.filter(prompt__campaign=campaign, model_name="page-tuned")
    tuned_uids = {str(image.uid) for image in tuned}
    while (assignment := assignment_next(campaign=campaign, annotator=rater)) is not None:
        winner = next(uid for uid in assignment.presented if uid in tuned_uids)
        judgment_submit(assignment=assignment, answers={"overall": winner})
    card = client.get(card_url).content.decode()
    assert "Tuned model wins 1.000" in card and "of 2 judgments" in card
    assert 'hx-trigger="every 10s"' in card
    # 2 of 2 won: the Wilson interval is [2 / (2 + z^2), 1] = [0.3424, 1] at z = 1.96,
    # half-width 0.3288; +-0.05 takes 2 * ((0.3288 / 0.05)^2 - 1) = 84.5 more, so 85.
    assert "About 85 more judgments to narrow the interval to ±0.05." in card

    campaign.status = "closed"
    campaign.save(update_fields=["status"])
    assert "hx-trigger" not in client.get(card_url).content.decode()  # nothing more comes


@pytest.mark.parametrize(("who", "status"), [("annotator", 403), ("outsider", 404)])
def test_the_evaluation_card_is_hidden_from_annotators_and_outsiders(client, export, who, status):
    job = job_on(export, status=TrainingJob.Status.DONE)
    log_in(client, export.campaign, who)
    assert client.get(f"/training-jobs/{job.pk}/evaluation/").status_code == status


def test_the_api_returns_only_steps_after_the_one_asked_for(api_client, export):
    job = job_on(export)
    training_progress_save(
        job=training_job_claim(job_id=job.pk, worker="w1"),
        progress=Progress(
            step=3, latest={}, warnings=[], rows=[(s, {"loss": 1.0 / s}) for s in (1, 2, 3)]
        ),
    )
    api_client.force_authenticate(user_as(export.campaign, "researcher"))
    series = api_client.get(f"/api/training-jobs/{job.pk}/?after_step=1").json()["series"]
    assert series["step"] == [2, 3] and series["loss"] == [0.5, 1 / 3]
    assert api_client.get(f"/api/training-jobs/{job.pk}/").json()["series"]["step"] == [1, 2, 3]
    for bad in ("-1", "two", str(2**31)):
        response = api_client.get(f"/api/training-jobs/{job.pk}/?after_step={bad}")
        assert response.status_code == 400 and "after_step" in response.json()["detail"]


def test_the_dashboard_links_exports_to_training_and_jobs_to_their_page(client, export):
    job = job_on(export)
    log_in(client, export.campaign, "researcher")
    html = client.get(f"/campaigns/{export.campaign.pk}/dashboard/").content.decode()
    assert f'href="/exports/{export.pk}/train/"' in html
    assert f'href="/training-jobs/{job.pk}/"' in html


@pytest.fixture
def two_models(settings, tmp_path):
    """A 64 px tiny pipeline (listed first) and a 512 px Stable Diffusion 1.5 layout."""
    root = tmp_path / "models"
    tiny = pipeline_folder(root, "a-tiny", sample_size=32, vae_blocks=[4, 8])
    sd = pipeline_folder(root, "b-sd15", sample_size=64, vae_blocks=[128, 256, 512, 512])
    settings.PICKWISE_MODEL_ROOTS = [root]
    return Path(tiny).resolve(), Path(sd).resolve()


def test_the_form_starts_from_the_first_base_models_native_resolution(client, export, two_models):
    log_in(client, export.campaign, "researcher")
    response = client.get(f"/exports/{export.pk}/train/")
    form = response.context["form"]
    assert (form["resolution"].value(), form["max_train_steps"].value()) == (64, 100)
    assert form.model_defaults == {
        str(two_models[0]): {"resolution": 64, "max_train_steps": 100},
        str(two_models[1]): {"resolution": 512, "max_train_steps": 2000},
    }
    page = response.content.decode()
    assert 'id="base-model-defaults"' in page and "js/training_start.js" in page


@pytest.mark.parametrize(("chosen", "expected"), [(0, (64, 100)), (1, (512, 2000))])
def test_blank_steps_and_resolution_take_the_chosen_base_models_defaults(
    client, export, two_models, chosen, expected
):
    log_in(client, export.campaign, "researcher")
    form = start_form(two_models[chosen].parent, pretrained=str(two_models[chosen]))
    form.update(resolution="", max_train_steps="")
    response = client.post(f"/exports/{export.pk}/train/", form)
    assert response.status_code == 302
    job = TrainingJob.objects.get()
    assert (job.options["resolution"], job.options["max_train_steps"]) == expected
    assert job.max_steps == expected[1]


@pytest.mark.parametrize("resolution", [13, 0, -8, 4])
def test_a_resolution_that_is_not_a_positive_multiple_of_8_is_refused_on_its_field(
    client, export, model_root, resolution
):
    log_in(client, export.campaign, "researcher")
    response = client.post(
        f"/exports/{export.pk}/train/", start_form(model_root, resolution=resolution)
    )
    assert response.status_code == 400
    assert response.context["form"].errors["resolution"] == [
        ERROR_RESOLUTION.format(value=resolution)
    ]
    assert not TrainingJob.objects.exists()


def lora_done_job(export, model_root, tmp_path) -> TrainingJob:
    output = tmp_path / "training" / "job-out"  # inside TRAINING_ROOT, where weights may be
    output.mkdir(parents=True)
    (output / "pytorch_lora_weights.safetensors").write_bytes(b"")
    return job_on(
        export,
        pretrained=str((model_root / "sd-base").resolve()),
        status=TrainingJob.Status.DONE,
        output_dir=str(output),
        options={"resolution": 64},
    )


def test_the_evaluation_form_shows_the_expected_interval_width_and_the_default_judges(
    client, export, model_root, tmp_path
):
    job = lora_done_job(export, model_root, tmp_path)
    log_in(client, export.campaign, "researcher")
    html = client.get(f"/training-jobs/{job.pk}/").content.decode()
    raters = export.campaign.memberships.filter(role="annotator").select_related("user")
    for membership in raters:
        assert membership.user.username in html  # prefilled as the judges
    # One held-out prompt x 2 seeds = 2 comparisons, 2 judges: 4 judgments.
    assert "1 prompts × 2 seeds = 2 comparisons, 2 judgments each: 4 judgments." in html
    assert f'data-width="{wilson_width(4):.3f}"' in html
    assert "capped at 2: one per judge" in html

    estimate = f"/training-jobs/{job.pk}/evaluate/estimate/"
    text = client.get(estimate, {"seeds_per_prompt": 10, "overlap": 1}).content.decode()
    assert "10 comparisons, 1 judgments each: 10 judgments." in text
    assert f'data-width="{wilson_width(10):.3f}"' in text
    text = client.get(estimate, {"seeds_per_prompt": 1, "overlap": 1, "judges": "nobody"})
    assert "line 1: No account has the username or e-mail address &#x27;nobody&#x27;." in (
        text.content.decode()
    )
    text = client.get(estimate, {"seeds_per_prompt": 0, "overlap": 1}).content.decode()
    assert "Ensure this value is greater than or equal to 1." in text


def test_creating_the_evaluation_makes_its_judges_annotators(client, export, model_root, tmp_path):
    job = lora_done_job(export, model_root, tmp_path)
    researcher = log_in(client, export.campaign, "researcher")
    judge = user_as(export.campaign, "outsider")
    form = {"seeds_per_prompt": 2, "overlap": 3, "steps": 2, "guidance": 5, "seed": 0}
    response = client.post(
        f"/training-jobs/{job.pk}/evaluate/", {**form, "judges": judge.username}, follow=True
    )
    assert "its images are being generated" in response.content.decode()
    job.refresh_from_db()
    campaign = job.evaluation_campaign
    roles = dict(campaign.memberships.values_list("user_id", "role"))
    assert roles == {researcher.pk: "admin", judge.pk: "annotator"}
    assert campaign.overlap == 1  # one judge


def test_an_unknown_judge_creates_nothing_and_says_which_line(client, export, model_root, tmp_path):
    job = lora_done_job(export, model_root, tmp_path)
    log_in(client, export.campaign, "researcher")
    form = {"seeds_per_prompt": 1, "overlap": 1, "steps": 2, "guidance": 5, "seed": 0}
    response = client.post(
        f"/training-jobs/{job.pk}/evaluate/", {**form, "judges": "ghost"}, follow=True
    )
    assert "Judges, line 1: No account has the username or e-mail address" in (
        response.content.decode()
    )
    job.refresh_from_db()
    assert job.evaluation_campaign is None


@pytest.mark.parametrize(("who", "status"), [("annotator", 403), ("outsider", 404)])
def test_the_estimate_is_hidden_from_annotators_and_outsiders(client, export, who, status):
    job = job_on(export, status=TrainingJob.Status.DONE)
    log_in(client, export.campaign, who)
    response = client.get(f"/training-jobs/{job.pk}/evaluate/estimate/", {"seeds_per_prompt": 1})
    assert response.status_code == status
