"""The runner on the tiny pipeline, in this process: the trainer as a real subprocess.

A run to the end is in test_evaluation (in process) and test_jobs_worker (on a worker)."""

import json
import shutil
from pathlib import Path

import pytest

from pickwise.errors import without_paths
from tests.training.jobs_support import TINY_OPTIONS, finished_export
from training.models import TrainingJob, TrainingMetric
from training.runner import TRAINER_FAILED, MetricsTail
from training.runner import training_job_run as run
from training.selectors import training_job_metric_series
from training.services.jobs import training_job_create, training_jobs_recover
from training.services.runs import Progress, training_job_claim, training_progress_save

pytestmark = [pytest.mark.slow, pytest.mark.django_db, pytest.mark.usefixtures("training_dirs")]


@pytest.fixture
def export(db):
    return finished_export(prompts=6)


def test_a_crash_in_the_trainer_fails_the_job_with_a_sentence_and_logs_the_traceback(
    export, tiny_model_dir, tmp_path, caplog
):
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dir, broken)
    for weights in (broken / "unet").glob("diffusion_pytorch_model*"):
        weights.unlink()
    job = training_job_create(export=export, pretrained=str(broken), options={**TINY_OPTIONS})
    assert run(job_id=job.pk, worker="here") == TrainingJob.Status.FAILED
    job.refresh_from_db()
    assert job.error == TRAINER_FAILED.format(code=1)
    assert "Traceback" in caplog.text and "diffusion_pytorch_model" in caplog.text
    assert not TrainingMetric.objects.filter(job=job).exists()


def test_input_only_the_worker_can_judge_fails_with_the_trainers_own_message(
    export, tiny_model_dir
):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("fp16 is allowed on a CUDA machine")
    job = training_job_create(
        export=export,
        pretrained=str(tiny_model_dir),
        options={**TINY_OPTIONS, "mixed_precision": "fp16"},
    )
    assert run(job_id=job.pk, worker="here") == TrainingJob.Status.FAILED
    job.refresh_from_db()
    assert job.error == (
        "The trainer refused its input: invalid training config: fp16 mixed precision needs a "
        "CUDA GPU; use no or bf16 on CPU"
    )


def test_paths_are_taken_out_of_messages_shown_to_users():
    assert (
        without_paths(
            "reference model folder not found: /etc/secret/x, see C:\\models\\a or https://h.org/p"
        )
        == "reference model folder not found: <path>, see <path> or https://h.org/p"
    )
    assert without_paths("1/2 of the steps, lora/unet") == "1/2 of the steps, lora/unet"


def test_the_metrics_tail_keeps_what_a_resumed_trainer_keeps_and_reads_whole_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(
        '{"event": "start", "step": 0}\n{"event": "step", "step": 1}\n'
        '{"event": "checkpoint", "step": 1}\n{"event": "step", "step": 2}\n'
        '{"event": "done", "step": 2}\n'
    )
    tail = MetricsTail(path)
    tail.prepare(resume_step=1)
    assert tail.read() == []
    with path.open("a") as handle:
        handle.write('{"event": "start", "step": 1}\n{"event": "step", "st')
    assert tail.read() == [{"event": "start", "step": 1}]
    with path.open("a") as handle:
        handle.write('ep": 2}\n')
    assert tail.read() == [{"event": "step", "step": 2}]
    assert path.read_text().splitlines()[:3] == [
        '{"event": "start", "step": 0}',
        '{"event": "step", "step": 1}',
        '{"event": "checkpoint", "step": 1}',
    ]


def test_a_resumed_run_stores_the_kept_steps_its_dead_predecessor_had_not(
    export, pipeline_layout_dir
):
    job = training_job_create(
        export=export, pretrained=str(pipeline_layout_dir), options={**TINY_OPTIONS}
    )
    first = training_job_claim(job_id=job.pk, worker="dead")
    training_progress_save(
        job=first,
        progress=Progress(step=1, latest={"loss": 0.7}, warnings=[], rows=[(1, {"loss": 0.7})]),
    )
    # The dead run got to step 3, checkpointed step 2, and its runner stored step 1 only.
    output = Path(job.output_dir)
    (output / "checkpoints" / "step-2").mkdir(parents=True)
    (output / "checkpoints" / "latest").write_text("step-2")
    records = [
        {"event": "start", "step": 0},
        {"event": "step", "step": 1, "loss": 0.7},
        {"event": "step", "step": 2, "loss": 0.6},
        {"event": "warning", "step": 2, "message": "both MSE grew"},
        {"event": "checkpoint", "step": 2},
        {"event": "step", "step": 3, "loss": 0.5},
    ]
    (output / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    training_jobs_recover(worker="dead")

    # The layout-only model cannot load, so this run fails after the start: what it stored
    # is what the resume kept.
    assert run(job_id=job.pk, worker="alive") == TrainingJob.Status.FAILED
    job.refresh_from_db()
    assert job.attempts == 2
    assert training_job_metric_series(job=job)["step"] == [1, 2]
    assert (job.step, job.latest_metrics) == (2, {"loss": 0.6})
    assert job.warnings == [{"step": 2, "message": "both MSE grew"}]
    assert (output / "metrics.jsonl").read_text().count('"event": "step"') == 2
