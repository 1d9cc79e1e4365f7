"""A real generate worker, killed mid-job (SIGKILL) and restarted, finishes the job with no
hole and no duplicate.

The worker is a separate `celery worker` process on the configured broker (Redis when
CELERY_BROKER_URL is set, else kombu's filesystem broker) and the test database, which must
be a file or a server that both processes can open.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from annotate.models import Comparison, Image
from generation.models import GenerationItem, GenerationJob
from generation.services.jobs import generation_job_start
from tests.factories import CampaignFactory, GeneratorFactory, PromptFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
# Upper bounds for a loaded 2-core machine, not speed targets: each wait ends on success.
START_SECONDS = 240
FINISH_SECONDS = 300


def shared_database_url() -> str:
    """DATABASE_URL for the worker, naming the database this test runs on."""
    db = connection.settings_dict
    name = str(db["NAME"])
    if db["ENGINE"].endswith("sqlite3"):
        if name == ":memory:" or "mode=memory" in name:
            pytest.skip("an in-memory SQLite database cannot be shared with a worker process")
        return f"sqlite:///{Path(name).resolve()}"
    if db["ENGINE"].endswith("postgresql"):
        auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
        return f"postgres://{auth}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{name}"
    pytest.skip(f"no worker URL for {db['ENGINE']}")


class Worker:
    """`celery worker -Q generate --pool=solo` (or another queue), under a fixed node name
    across restarts."""

    def __init__(self, log_dir: Path, queue: str = "generate", pool: str = "solo"):
        self.queue = queue
        self.pool = pool
        self.name = f"gen-test-{uuid.uuid4().hex[:8]}@%h"
        self.log_dir = log_dir
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "pickwise.settings",
            "PICKWISE_TESTING": "1",
            "HF_HUB_OFFLINE": "1",
            "DATABASE_URL": shared_database_url(),
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "PYTHONPATH": str(ROOT),
        }
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def log(self) -> Path:
        return self.log_dir / f"worker-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "pickwise", "worker", "-Q", self.queue]
                + ["-c", "1", f"--pool={self.pool}", "-n", self.name, "-l", "INFO"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.wait_for(lambda: " ready." in self.log.read_text(), START_SECONDS, "start")

    def wait_for(self, condition, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert self.process.poll() is None, f"the worker died:\n{self.tail()}"
            assert time.monotonic() < deadline, f"timed out waiting to {what}:\n{self.tail()}"
            time.sleep(0.1)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else ""


@pytest.fixture
def worker(tmp_path):
    worker = Worker(tmp_path)
    yield worker
    worker.stop()


def done_count(job: GenerationJob) -> int:
    return job.items.filter(status=GenerationItem.Status.DONE).count()


def test_a_worker_killed_mid_job_and_restarted_completes_it_without_holes_or_duplicates(
    worker, settings
):
    # One item per task, so the kill lands between and inside batches, not after the job.
    settings.PICKWISE_GENERATION_BATCH_SIZE = 1
    campaign = CampaignFactory(status="generating")
    for _ in range(3):
        PromptFactory(campaign=campaign)
    generators = [GeneratorFactory(steps=4), GeneratorFactory(steps=4, guidance=2.0)]
    worker.start()

    job = generation_job_start(
        campaign=campaign, generators=generators, seeds_per_prompt=2, gold_count=2
    )
    total = job.items.count()
    assert total == 12
    worker.wait_for(lambda: done_count(job) >= 2, FINISH_SECONDS, "make two images")
    worker.kill()

    assert done_count(job) < total, "the job finished before the kill; the test proves nothing"
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.RUNNING

    worker.start()  # same node name: it gives back what its killed self held
    worker.wait_for(
        lambda: GenerationJob.objects.get(pk=job.pk).status != GenerationJob.Status.RUNNING,
        FINISH_SECONDS,
        "finish the job",
    )

    job.refresh_from_db()
    assert job.status == GenerationJob.Status.DONE, worker.tail()
    assert "generation recovery on start of gen-test-" in worker.log.read_text()
    items = list(job.items.select_related("image"))
    assert {item.status for item in items} == {GenerationItem.Status.DONE}
    for item in items:
        assert (item.image.prompt_id, item.image.generator_id, item.image.seed) == (
            item.prompt_id,
            item.generator_id,
            item.seed,
        )
    generated = Image.objects.filter(source=Image.Source.GENERATED)
    assert generated.count() == total
    assert len({item.image_id for item in items}) == total
    # Content-addressed files: one per distinct image, nothing half-written left behind.
    files = [p for p in (Path(settings.MEDIA_ROOT) / "images").rglob("*") if p.is_file()]
    assert len(files) == Image.objects.values("sha256").distinct().count()
    # Per prompt: 2 seeds x 2 generators, paired across generators = 4 comparisons.
    assert Comparison.objects.filter(role="regular").count() == 3 * 4 == job.comparisons_created
    assert Comparison.objects.filter(role="gold").count() == 2 == job.gold_created
    campaign.refresh_from_db()
    assert campaign.status == "active"
