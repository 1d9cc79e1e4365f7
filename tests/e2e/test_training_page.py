"""The training job page in a real browser: curves drawn from the series, new steps appended
while the job runs, and polling that stops when it ends."""

from pathlib import Path

import pytest

from annotate.models import Membership
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.helpers import log_in, make_campaign, member
from tests.exports.helpers import build, bulk_judge, prefer_models
from tests.training.jobs_support import finished_export, pipeline_folder
from training.models import TrainingJob
from training.services.runs import Progress, training_job_claim, training_progress_save

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


def _figures(step: int) -> dict:
    # A run that learns: the loss falls from ln 2, the margin and the accuracy rise.
    return {
        "loss": 0.6931 - 0.01 * step,
        "implicit_acc": min(1.0, 0.5 + 0.02 * step),
        "reward_margin": 0.001 * step,
        "mse_w": 0.10 - 0.001 * step,
        "mse_l": 0.10 + 0.0005 * step,
        "ref_mse_w": 0.10,
        "ref_mse_l": 0.10,
        "samples_per_s": 12.5,
    }


def _report(job, first: int, last: int) -> None:
    training_progress_save(
        job=job,
        progress=Progress(
            step=last,
            latest=_figures(last),
            warnings=[],
            rows=[(step, _figures(step)) for step in range(first, last + 1)],
        ),
    )


def _drawn(page) -> int:
    return int(page.get_attribute("[data-training-job]", "data-steps") or 0)


def test_the_curves_grow_while_the_job_runs_and_polling_stops_when_it_ends(
    live_server, new_page, settings, tmp_path
):
    settings.TRAINING_ROOT = tmp_path / "training"
    settings.EXPORT_ROOT = tmp_path / "exports"
    campaign = make_campaign(prompts=8, title="Watercolour birds")
    raters = [member(campaign, f"rater{i}") for i in range(2)]
    bulk_judge(campaign, raters, prefer_models("model-a", "model-b"))
    export = build(campaign, format="pickapic")
    member(campaign, "scientist", role=Membership.Role.RESEARCHER)
    job = TrainingJob.objects.create(
        export=export, name="dpo-lora-watercolour", pretrained="/models/sd", max_steps=40
    )
    job = training_job_claim(job_id=job.pk, worker="gpu-1")
    _report(job, 1, 12)

    page = new_page(width=1280, height=1100)
    log_in(page, live_server.url, "scientist", next_path=f"/training-jobs/{job.pk}/")
    page.wait_for_selector("[data-chart] .uplot")
    assert page.locator("[data-chart] .uplot").count() == 4
    assert _drawn(page) == 12

    _report(job, 13, 30)  # the trainer reports more steps; the page fetches only those
    page.wait_for_function(
        "() => document.querySelector('[data-training-job]').dataset.steps === '30'",
        timeout=20_000,
    )
    page.wait_for_function(
        "() => document.querySelector('[data-figure=loss]').textContent.trim() === '0.3931'",
        timeout=20_000,
    )
    page.screenshot(path=str(SCREENSHOTS / "training_job.png"), full_page=True)

    job.refresh_from_db()
    _report(job, 31, 40)
    TrainingJob.objects.filter(pk=job.pk).update(status=TrainingJob.Status.DONE)
    page.wait_for_selector("#training-status[data-status=done]", timeout=20_000)
    page.wait_for_function(
        "() => document.querySelector('[data-training-job]').dataset.steps === '40'",
        timeout=20_000,
    )
    assert page.locator("text=Cancel training").count() == 0
    # The evaluation form arrives with the status that says the job is done: no reload.
    page.wait_for_selector("text=Create evaluation campaign", timeout=20_000)
    assert page.locator("text=Available once training has finished.").count() == 0


def test_resolution_and_steps_follow_the_chosen_base_model_unless_typed(
    live_server, new_page, settings, tmp_path
):
    settings.TRAINING_ROOT = tmp_path / "training"
    settings.EXPORT_ROOT = tmp_path / "exports"
    root = tmp_path / "models"
    pipeline_folder(root, "a-tiny", sample_size=32, vae_blocks=[4, 8])
    sd = pipeline_folder(root, "b-sd15", sample_size=64, vae_blocks=[128, 256, 512, 512])
    settings.PICKWISE_MODEL_ROOTS = [root]
    export = finished_export(prompts=4)
    member(export.campaign, "scientist", role=Membership.Role.RESEARCHER)

    page = new_page()
    log_in(page, live_server.url, "scientist", next_path=f"/exports/{export.pk}/train/")
    values = "() => [id_resolution.value, id_max_train_steps.value]"
    assert page.evaluate(values) == ["64", "100"]
    page.select_option("#id_pretrained", str(Path(sd).resolve()))
    assert page.evaluate(values) == ["512", "2000"]
    page.fill("#id_max_train_steps", "300")  # typed: kept when the model changes again
    page.select_option("#id_pretrained", index=0)
    assert page.evaluate(values) == ["64", "300"]
