"""Training jobs on a real `celery worker -Q train` process against the test database: started
through the API, followed, cancelled, and resumed from a checkpoint after the worker is killed.

The worker helper is the generation tests' one (same broker and database rules).
"""

import os
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from tests.factories import user_as
from tests.generation.test_worker import FINISH_SECONDS, Worker
from tests.training.jobs_support import TINY_OPTIONS, finished_export
from training.models import TrainingJob
from training.runner import latest_checkpoint_step

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("training_dirs"),
]


@pytest.fixture
def worker(tmp_path):
    worker = Worker(tmp_path, queue="train")
    worker.env |= {
        "TRAINING_ROOT": str(django_settings.TRAINING_ROOT),
        "EXPORT_ROOT": str(django_settings.EXPORT_ROOT),
        "PICKWISE_TRAINING_PROGRESS_SECONDS": "0.2",
        # One torch thread: spin-waiting OpenMP threads crawl on a shared 2-core machine.
        "OMP_NUM_THREADS": "1",
    }
    yield worker
    worker.stop()


def job_of(job_id: int) -> TrainingJob:
    return TrainingJob.objects.get(pk=job_id)


def start_through_the_api(api_client, export, model_dir, **options) -> int:
    api_client.force_authenticate(user_as(export.campaign, "researcher"))
    response = api_client.post(
        "/api/training-jobs/",
        {"export": export.pk, "pretrained": str(model_dir), "options": {**TINY_OPTIONS, **options}},
        format="json",
    )
    assert response.status_code == 202, response.json()
    return response.json()["id"]


def trainer_pids(output) -> set[int]:
    """Trainer processes still running for this output folder."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read().split(b"\0")
        except OSError:
            continue
        if b"training.dpo" in command and str(output).encode() in command:
            found.add(int(entry))
    return found


def gone(output, seconds: float = 30) -> bool:
    """True once no trainer runs for the folder (an upper bound for a loaded machine)."""
    deadline = time.monotonic() + seconds
    while trainer_pids(output):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_a_job_reports_progress_and_resumes_from_its_checkpoint_after_its_worker_is_killed(
    worker, api_client, tiny_model_dir
):
    export = finished_export(prompts=6)
    worker.start()
    job_id = start_through_the_api(
        api_client, export, tiny_model_dir, max_train_steps=60, checkpointing_steps=2
    )
    output = Path(job_of(job_id).output_dir)

    worker.wait_for(
        lambda: (latest_checkpoint_step(output) or 0) >= 2 and job_of(job_id).step >= 2,
        FINISH_SECONDS,
        "report progress past a checkpoint",
    )
    detail = api_client.get(f"/api/training-jobs/{job_id}/").json()
    assert detail["status"] == "running"
    assert detail["progress"]["total_steps"] == 60 and detail["progress"]["step"] >= 2
    assert "loss" in detail["progress"]["latest"]
    assert detail["series"]["step"][:2] == [1, 2]
    worker.kill()

    job = job_of(job_id)
    assert job.status == TrainingJob.Status.RUNNING and job.step < 60, "finished before the kill"
    # The trainer dies with its worker: nothing goes on training unsupervised.
    assert gone(output), "the trainer outlived its killed worker"

    worker.start()  # same node name: it re-queues what its killed self was running
    worker.wait_for(
        lambda: job_of(job_id).status not in TrainingJob.ACTIVE, FINISH_SECONDS, "finish"
    )
    job = job_of(job_id)
    assert job.status == TrainingJob.Status.DONE, job.error
    assert job.attempts == 2 and job.step == 60
    assert "training recovery on start of gen-test-" in worker.log.read_text()
    assert "resumed from" in (output / "trainer-2.log").read_text()
    series = api_client.get(f"/api/training-jobs/{job_id}/").json()["series"]
    assert series["step"] == list(range(1, 61))


def test_cancel_stops_a_running_job_and_its_trainer(worker, api_client, tiny_model_dir):
    export = finished_export(prompts=6)
    worker.start()
    job_id = start_through_the_api(api_client, export, tiny_model_dir, max_train_steps=100_000)
    worker.wait_for(lambda: job_of(job_id).step >= 1, FINISH_SECONDS, "start training")

    response = api_client.post(f"/api/training-jobs/{job_id}/cancel/")
    assert response.status_code == 200
    assert response.json()["cancel_requested"] is True
    worker.wait_for(
        lambda: job_of(job_id).status == TrainingJob.Status.CANCELLED, 120, "stop the trainer"
    )
    job = job_of(job_id)
    assert job.error == "Cancelled." and job.finished_at is not None and job.step < 100_000
    assert gone(job.output_dir)
    assert worker.process.poll() is None  # the worker itself goes on
