"""The runner on the tiny pipeline, in this process: the trainer as a real subprocess.

A run to the end is in test_evaluation (in process) and test_jobs_worker (on a worker)."""

import shutil

import pytest

from tests.training.jobs_support import TINY_OPTIONS, finished_export
from training.models import TrainingJob, TrainingMetric
from training.runner import MetricsTail
from training.runner import training_job_run as run
from training.services.jobs import training_job_create

pytestmark = [pytest.mark.slow, pytest.mark.django_db, pytest.mark.usefixtures("training_dirs")]


@pytest.fixture
def export(db):
    return finished_export(prompts=6)


def test_a_crash_in_the_trainer_fails_the_job_with_the_tail_of_its_output(
    export, tiny_model_dir, tmp_path
):
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dir, broken)
    for weights in (broken / "unet").glob("diffusion_pytorch_model*"):
        weights.unlink()
    job = training_job_create(export=export, pretrained=str(broken), options={**TINY_OPTIONS})
    assert run(job_id=job.pk, worker="here") == TrainingJob.Status.FAILED
    job.refresh_from_db()
    assert job.error.startswith("The trainer exited with status 1:\n")
    assert "Traceback" in job.error and "diffusion_pytorch_model" in job.error
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
