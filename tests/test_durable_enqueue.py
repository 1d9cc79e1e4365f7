"""A lost broker fails no request and loses no work: against a real redis-server that the test
stops and starts, exports, image imports, training jobs and submits answer success while it is
down, their tasks wait in the outbox, and the sweep sends them once it is back, where they run.
"""

import json
import shutil
import socket
import subprocess
import time

import pytest
import redis
from django.core.files.uploadedfile import SimpleUploadedFile
from kombu import Connection

from annotate.models import ImageImport, Judgment
from exports.models import Export
from pickwise.celery import app
from pickwise.enqueue import outbox_resend
from pickwise.models import OutboxMessage
from tests.factories import annotator, campaign_with_comparisons, manifest_zip, user_as
from tests.training.jobs_support import TINY_OPTIONS, finished_export
from training.models import TrainingJob

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


class RedisServer:
    """A throwaway redis-server on a spare port, without persistence."""

    def __init__(self, folder):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.folder = folder
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def _use_broker(url: str, options: dict) -> None:
    app.conf.broker_url = url
    app.conf.broker_transport_options = options
    # Connections and producers are pooled per app: drop them so the next send uses `url`.
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def broker(tmp_path, monkeypatch):
    server = RedisServer(tmp_path)
    server.start()
    before = (app.conf.broker_url, dict(app.conf.broker_transport_options or {}))
    # Celery reads CELERY_BROKER_URL from the environment before its own setting (as CI sets it).
    monkeypatch.setenv("CELERY_BROKER_URL", server.url)
    _use_broker(server.url, {"socket_connect_timeout": 2, "socket_timeout": 2})
    yield server
    server.stop()
    _use_broker(*before)


def _queued(server: RedisServer, queue: str) -> list[tuple[str, list]]:
    """(task name, args) of every message waiting in `queue`, taken off it."""
    taken = []
    with Connection(server.url) as connection:
        simple = connection.SimpleQueue(queue, no_ack=True)
        while True:
            try:
                message = simple.get(timeout=0.5)
            except simple.Empty:
                break
            args, _kwargs, _embed = json.loads(message.body)
            taken.append((message.headers["task"], args))
        simple.close()
    return taken


def _run(messages: list[tuple[str, list]]) -> None:
    """Run each message's task here, as a worker that took it off the queue would."""
    for name, args in messages:
        app.tasks[name].apply(args=args).get()


@pytest.fixture
def pipeline_layout_dir(settings, tmp_path):
    """Training folders under the test's own, and a model folder that passes the start checks."""
    settings.TRAINING_ROOT = tmp_path / "training"
    settings.EXPORT_ROOT = tmp_path / "exports"
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    return folder


def test_requests_succeed_while_the_broker_is_down_and_their_work_runs_once_it_is_back(
    broker, api_client, pipeline_layout_dir, caplog
):
    export = finished_export(prompts=4)
    campaign = export.campaign
    api_client.force_authenticate(user_as(campaign, "admin"))
    broker.stop()

    started = time.monotonic()
    made_export = api_client.post(
        "/api/exports/", {"campaign": campaign.pk, "format": "jsonl"}, format="json"
    )
    upload = SimpleUploadedFile("more.zip", manifest_zip(prompts=2), "application/zip")
    made_import = api_client.post(
        f"/api/campaigns/{campaign.pk}/images/", {"file": upload}, format="multipart"
    )
    made_job = api_client.post(
        "/api/training-jobs/",
        {"export": export.pk, "pretrained": str(pipeline_layout_dir), "options": TINY_OPTIONS},
        format="json",
    )
    assert made_export.status_code == 202, made_export.json()
    assert made_import.status_code == 202, made_import.json()
    assert made_job.status_code == 202, made_job.json()
    assert time.monotonic() - started < 30  # a short broker timeout, not kombu's retries
    export_id, import_id, job_id = (r.json()["id"] for r in (made_export, made_import, made_job))
    assert Export.objects.get(pk=export_id).status == Export.Status.PENDING
    assert ImageImport.objects.get(pk=import_id).status == ImageImport.Status.PENDING
    assert TrainingJob.objects.get(pk=job_id).status == TrainingJob.Status.QUEUED
    waiting = sorted(OutboxMessage.objects.values_list("task", "args"))
    assert waiting == [
        ("annotate.run_image_import", [import_id]),
        ("exports.build", [export_id]),
        ("training.run_job", [job_id]),
    ]
    assert "The broker did not take exports.build" in caplog.text
    # A sweep while the broker is still away keeps every message.
    assert outbox_resend(older_than=0) == {"sent": 0, "left": 3}

    broker.start()
    assert outbox_resend(older_than=0) == {"sent": 3, "left": 0}
    default = _queued(broker, "default")
    assert sorted(default) == [
        ("annotate.run_image_import", [import_id]),
        ("exports.build", [export_id]),
    ]
    assert _queued(broker, "train") == [("training.run_job", [job_id])]
    _run(default)
    assert Export.objects.get(pk=export_id).status == Export.Status.FINISHED
    assert ImageImport.objects.get(pk=import_id).status == ImageImport.Status.SUCCEEDED


def test_submits_are_stored_and_answered_while_the_broker_is_down(broker, api_client, caplog):
    campaign = campaign_with_comparisons(prompts=8, gold_rate=0.0, repeat_rate=0.0)
    api_client.force_authenticate(annotator(campaign))
    broker.stop()
    # Every fifth counted judgment enqueues the rater's evaluation.
    for _ in range(5):
        task = api_client.post(f"/api/campaigns/{campaign.pk}/next/", {}, format="json")
        assert task.status_code == 200, task.json()
        submitted = api_client.post(
            f"/api/assignments/{task.json()['id']}/submit/",
            {"answers": {"overall": "tie"}, "duration_ms": 900},
            format="json",
        )
        assert submitted.status_code in (200, 201), submitted.json()
    assert Judgment.objects.filter(campaign=campaign).count() == 5
    assert "The broker did not take quality.rater_evaluate" in caplog.text
    # Not kept: quality.recompute_all evaluates every rater again.
    assert not OutboxMessage.objects.exists()


def test_a_broker_that_accepts_connections_but_never_answers_does_not_hang_a_request(
    broker, api_client, settings, tmp_path
):
    settings.EXPORT_ROOT = tmp_path / "exports"
    export = finished_export(prompts=4)
    api_client.force_authenticate(user_as(export.campaign, "researcher"))
    broker.stop()
    with socket.socket() as silent:  # a frozen broker: the kernel accepts, nobody replies
        silent.bind(("127.0.0.1", broker.port))
        silent.listen(16)
        started = time.monotonic()
        response = api_client.post(
            "/api/exports/", {"campaign": export.campaign.pk, "format": "jsonl"}, format="json"
        )
        waited = time.monotonic() - started
    assert response.status_code == 202, response.json()
    assert 1.5 <= waited < 20  # the socket timeout (2 s here), once per try, not forever
    assert list(OutboxMessage.objects.values_list("task", "args")) == [
        ("exports.build", [response.json()["id"]])
    ]


def test_a_sent_message_leaves_the_outbox_at_once(broker, api_client, settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path / "exports"
    export = finished_export(prompts=4)
    api_client.force_authenticate(user_as(export.campaign, "researcher"))
    response = api_client.post(
        "/api/exports/", {"campaign": export.campaign.pk, "format": "jsonl"}, format="json"
    )
    assert response.status_code == 202
    assert not OutboxMessage.objects.exists()
    assert _queued(broker, "default") == [("exports.build", [response.json()["id"]])]


def test_recovery_sweeps_run_on_the_default_queue():
    for name in (
        "training.recover_stalled",
        "generation.recover_stalled",
        "pickwise.outbox_resend",
    ):
        assert app.amqp.router.route({}, name)["queue"].name == "default", name
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "pickwise.outbox_resend" in scheduled
