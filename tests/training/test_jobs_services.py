"""Starting, cancelling and recovering training jobs: the checks at start and the claims."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from exports.models import Export
from pickwise.errors import ApplicationError
from pickwise.model_folders import ERROR_MODEL_FOLDER_UNAVAILABLE
from tests.training.jobs_support import TINY_OPTIONS, finished_export
from training.export_files import held_out_captions
from training.models import TrainingJob, TrainingMetric
from training.options import options_clean, trainer_argv
from training.services import jobs
from training.services.jobs import (
    training_job_cancel,
    training_job_create,
    training_job_start,
    training_jobs_recover,
)
from training.services.runs import (
    Progress,
    training_job_claim,
    training_progress_save,
    training_run_end,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("training_dirs")]


@pytest.fixture
def export(db):
    return finished_export(prompts=4)


def create(export, pipeline_layout_dir, **fields):
    return training_job_create(
        export=export, pretrained=str(pipeline_layout_dir), options={**TINY_OPTIONS}, **fields
    )


def test_it_records_a_queued_job_with_its_output_folder_and_step_total(
    export, pipeline_layout_dir, settings
):
    job = create(export, pipeline_layout_dir, method="mapo")
    assert job.status == TrainingJob.Status.QUEUED
    assert job.max_steps == TINY_OPTIONS["max_train_steps"]
    assert Path(job.output_dir) == Path(settings.TRAINING_ROOT) / f"job-{job.pk}"
    assert job.options == TINY_OPTIONS


def test_start_enqueues_the_run_only_on_commit(
    export, pipeline_layout_dir, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as sends:
        job = training_job_start(
            export=export, pretrained=str(pipeline_layout_dir), options=TINY_OPTIONS
        )
    assert [(send.func.__self__.name, send.args) for send in sends] == [
        ("training.run_job", (job.pk,))
    ]


def test_it_refuses_an_export_whose_pairs_are_all_ties(pipeline_layout_dir):
    export = finished_export(prompts=6, ties_only=True)
    with pytest.raises(ApplicationError) as error:
        create(export, pipeline_layout_dir)
    assert error.value.code == "no_pairs"
    assert error.value.message.startswith(f"Export {export.pk} has no preference pairs")
    assert not TrainingJob.objects.exists()


def test_it_refuses_a_missing_model_folder(export, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ApplicationError) as error:
        training_job_create(export=export, pretrained=str(missing))
    assert error.value.message == ERROR_MODEL_FOLDER_UNAVAILABLE.format(field="pretrained")


def test_it_refuses_a_folder_that_is_not_a_pipeline(export, tmp_path):
    with pytest.raises(ApplicationError) as error:
        training_job_create(export=export, pretrained=str(tmp_path))
    assert error.value.message == jobs.ERROR_NOT_A_PIPELINE.format(path=tmp_path)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (
            {"method": "mapo", "mode": "full", "options": {"reference_model": "."}},
            "MaPO is reference-free: drop reference_model.",
        ),
        ({"mode": "lora", "options": {"reference_model": "."}}, "reference_model needs mode full"),
        ({"mode": "full", "options": {"lora_rank": 4}}, "lora_rank and lora_alpha apply"),
        ({"options": {"resolution": 30}}, "resolution must be a positive multiple of 8, not 30."),
        ({"options": {"resolution": 0}}, "resolution must be a positive multiple of 8, not 0."),
        ({"options": {"resolution": -8}}, "resolution must be a positive multiple of 8, not -8."),
        ({"options": {"max_train_steps": 0}}, "max_train_steps must be > 0."),
        ({"options": {"max_train_steps": "ten"}}, "max_train_steps must be a whole number."),
        ({"options": {"prompt_dropout": 1.0}}, "prompt_dropout must be in [0, 1)."),
        ({"options": {"mixed_precision": "fp8"}}, "mixed_precision must be one of"),
        ({"options": {"learning_rte": 1e-4}}, "Unknown training options: learning_rte."),
        (
            {"options": {"activation_checkpointing": "some"}},
            "activation_checkpointing must be one of",
        ),
        ({"options": {"activation_checkpointing": 1}}, "activation_checkpointing must be text."),
        (
            {
                "options": {
                    "gradient_checkpointing": True,
                    "activation_checkpointing": "selective",
                }
            },
            "gradient_checkpointing means activation_checkpointing full, not selective: drop",
        ),
        ({"options": {"torch_compile": "yes"}}, "torch_compile must be true or false."),
        ({"options": {"channels_last": 1}}, "channels_last must be true or false."),
    ],
)
def test_it_refuses_impossible_configs_with_the_reason(
    export, pipeline_layout_dir, fields, problem
):
    with pytest.raises(ApplicationError) as error:
        training_job_create(export=export, pretrained=str(pipeline_layout_dir), **fields)
    assert error.value.code == "invalid_options"
    assert problem in error.value.message
    assert not TrainingJob.objects.exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"method": "ppo"},
            jobs.ERROR_BAD_METHOD.format(choices=("dpo", "mapo", "rankdpo"), value="ppo"),
        ),
        ({"mode": "half"}, jobs.ERROR_BAD_MODE.format(choices=("lora", "full"), value="half")),
    ],
)
def test_it_refuses_an_unknown_method_or_mode(export, pipeline_layout_dir, fields, message):
    with pytest.raises(ApplicationError) as error:
        training_job_create(export=export, pretrained=str(pipeline_layout_dir), **fields)
    assert error.value.message == message


def test_it_refuses_an_unfinished_or_non_pickapic_export(export, pipeline_layout_dir):
    Export.objects.filter(pk=export.pk).update(status=Export.Status.RUNNING)
    export.refresh_from_db()
    with pytest.raises(ApplicationError) as error:
        create(export, pipeline_layout_dir)
    assert error.value.message == jobs.ERROR_EXPORT_NOT_FINISHED.format(
        id=export.pk, status="running"
    )
    Export.objects.filter(pk=export.pk).update(status=Export.Status.FINISHED, format="trl")
    export.refresh_from_db()
    with pytest.raises(ApplicationError) as error:
        create(export, pipeline_layout_dir)
    assert error.value.message == jobs.ERROR_EXPORT_FORMAT.format(
        id=export.pk, format="trl", method="dpo", needed="pickapic"
    )
    Export.objects.filter(pk=export.pk).update(format="pickapic")
    export.refresh_from_db()
    with pytest.raises(ApplicationError) as error:
        create(export, pipeline_layout_dir, method="rankdpo")
    assert error.value.message == (
        f"Export {export.pk} is in the pickapic format; rankdpo trains on a ranked export."
    )


def test_rankdpo_takes_a_ranked_export_and_refuses_one_whose_rankings_all_tie(
    pipeline_layout_dir,
):
    job = create(finished_export(prompts=4, format="ranked"), pipeline_layout_dir, method="rankdpo")
    assert (job.method, job.status) == ("rankdpo", TrainingJob.Status.QUEUED)
    assert held_out_captions(folder=job.export.folder)  # the ranked test split's prompts
    ties = finished_export(prompts=4, format="ranked", ties_only=True)
    with pytest.raises(ApplicationError) as error:
        create(ties, pipeline_layout_dir, method="rankdpo")
    assert error.value.code == "no_pairs"
    assert error.value.message == jobs.ERROR_NO_RANKINGS.format(id=ties.pk, rows=6, ties=6)


def test_every_impossible_combination_refused_here_is_refused_by_the_trainer(tmp_path):
    from training.trainer.config import DPOConfig, TrainerInputError

    model = tmp_path / "model"
    model.mkdir()
    (model / "model_index.json").write_text("{}")
    cases = [
        ("mapo", "full", {"reference_model": str(model)}),
        ("dpo", "lora", {"reference_model": str(model)}),
        ("dpo", "full", {"lora_rank": 4}),
        ("dpo", "lora", {"resolution": 30}),
        ("dpo", "lora", {"prompt_dropout": 1.5}),
        ("dpo", "lora", {"activation_checkpointing": "most"}),
        ("dpo", "lora", {"gradient_checkpointing": True, "activation_checkpointing": "none"}),
    ]
    for method, mode, options in cases:
        _cleaned, problems = options_clean(method=method, mode=mode, options=options)
        assert problems, options
        with pytest.raises(TrainerInputError):
            DPOConfig(
                data=tmp_path,
                pretrained=model,
                output=tmp_path,
                method=method,
                mode=mode,
                **options,
            )


def test_the_trainer_command_line_names_every_option_and_the_resume_mode():
    argv = trainer_argv(
        data="/e",
        pretrained="/m",
        output="/o",
        method="mapo",
        mode="lora",
        options={"random_flip": False, "beta": 2500.0, "lora_rank": 4},
        resume=True,
    )
    assert argv[1:3] == ["-m", "training.dpo"]
    joined = " ".join(argv[3:])
    assert "--data /e --pretrained /m --output /o --method mapo --mode lora" in joined
    assert "--metrics-file /o/metrics.jsonl --resume auto" in joined
    assert "--no-random-flip" in argv and "--lora-rank 4" in joined and "--beta 2500.0" in joined


def test_the_activation_memory_options_reach_the_trainer_command_line():
    options = {
        "activation_checkpointing": "selective",
        "channels_last": True,
        "torch_compile": True,
    }
    cleaned, problems = options_clean(method="dpo", mode="lora", options=options)
    assert (cleaned, problems) == (options, [])
    argv = trainer_argv(
        data="/e", pretrained="/m", output="/o", method="dpo", mode="lora", options=cleaned,
        resume=False,
    )  # fmt: skip
    joined = " ".join(argv)
    assert "--activation-checkpointing selective" in joined
    assert "--channels-last" in argv and "--torch-compile" in argv
    # The alias with its own meaning is accepted, as the trainer accepts it.
    assert (
        options_clean(
            method="dpo",
            mode="lora",
            options={"gradient_checkpointing": True, "activation_checkpointing": "full"},
        )[1]
        == []
    )


def test_a_queued_job_is_cancelled_at_once_and_a_running_one_is_flagged(
    export, pipeline_layout_dir
):
    queued = create(export, pipeline_layout_dir)
    training_job_cancel(job=queued)
    queued.refresh_from_db()
    assert queued.status == TrainingJob.Status.CANCELLED and queued.finished_at is not None

    running = create(export, pipeline_layout_dir)
    assert training_job_claim(job_id=running.pk, worker="w1") is not None
    training_job_cancel(job=running)
    running.refresh_from_db()
    assert running.status == TrainingJob.Status.RUNNING and running.cancel_requested

    with pytest.raises(ApplicationError) as error:
        training_job_cancel(job=queued)
    assert error.value.status == 409


def test_a_job_is_claimed_once_and_a_cancelled_one_not_at_all(export, pipeline_layout_dir):
    job = create(export, pipeline_layout_dir)
    first = training_job_claim(job_id=job.pk, worker="w1")
    assert first is not None and first.attempts == 1 and first.worker == "w1"
    assert training_job_claim(job_id=job.pk, worker="w2") is None

    cancelled = create(export, pipeline_layout_dir)
    training_job_cancel(job=cancelled)
    assert training_job_claim(job_id=cancelled.pk, worker="w1") is None


def test_progress_is_stored_and_a_lost_claim_writes_nothing(export, pipeline_layout_dir):
    job = training_job_claim(job_id=create(export, pipeline_layout_dir).pk, worker="w1")
    ack = training_progress_save(
        job=job,
        progress=Progress(step=2, latest={"loss": 0.6}, warnings=[], rows=[(1, {"loss": 0.7})]),
    )
    assert ack.held and not ack.cancel
    training_jobs_recover(worker="w1")  # w1 restarted: the job goes back to the queue
    ack = training_progress_save(
        job=job, progress=Progress(step=3, latest={}, warnings=[], rows=[(3, {"loss": 0.5})])
    )
    assert not ack.held
    assert not training_run_end(job=job, status=TrainingJob.Status.DONE)
    job.refresh_from_db()
    assert (job.status, job.step) == (TrainingJob.Status.QUEUED, 2)
    assert list(TrainingMetric.objects.values_list("step", flat=True)) == [1]


def test_recovery_requeues_stale_jobs_fails_those_that_died_too_often_and_honours_cancel(
    export, pipeline_layout_dir, settings, django_capture_on_commit_callbacks
):
    settings.PICKWISE_TRAINING_MAX_ATTEMPTS = 2
    stale = timezone.now() - timedelta(seconds=settings.PICKWISE_TRAINING_HEARTBEAT_TIMEOUT + 5)
    alive, dead, tired, cancelled = (create(export, pipeline_layout_dir) for _ in range(4))
    for job in (alive, dead, tired, cancelled):
        training_job_claim(job_id=job.pk, worker="w1")
    TrainingJob.objects.filter(pk__in=[dead.pk, tired.pk, cancelled.pk]).update(heartbeat_at=stale)
    TrainingJob.objects.filter(pk=tired.pk).update(attempts=2)
    TrainingJob.objects.filter(pk=cancelled.pk).update(cancel_requested=True)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        counts = training_jobs_recover()

    assert counts == {"requeued": 1, "failed": 1, "cancelled": 1}
    assert [(send.func.__self__.name, send.args) for send in callbacks] == [
        ("training.run_job", (dead.pk,))
    ]
    status = dict(TrainingJob.objects.values_list("pk", "status"))
    assert status == {
        alive.pk: "running",
        dead.pk: "queued",
        tired.pk: "failed",
        cancelled.pk: "cancelled",
    }
    assert TrainingJob.objects.get(pk=tired.pk).error == jobs.DIED_TOO_OFTEN.format(attempts=2)


def test_the_web_and_worker_side_of_training_do_not_import_torch():
    # The API, admin, tasks, runner and command run in web processes and the worker's parent;
    # only the trainer subprocess loads torch.
    code = (
        "import sys, django; django.setup(); "
        "import pickwise.urls, training.apis, training.admin, training.tasks, training.runner, "
        "training.services.evaluation, training.management.commands.train_dpo; "
        "loaded = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]; "
        "assert not loaded, loaded"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "pickwise.settings", "PICKWISE_TESTING": "1"}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2], env=env)
