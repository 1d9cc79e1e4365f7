"""A Python client generated from the live OpenAPI schema drives the API unchanged.

openapi-python-client reads /api/schema/ from a live server and writes a package; the test
imports it and, as a script would, obtains a token, annotates, exports and starts training.
"""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from annotate.models import Judgment
from annotate.services.campaigns import membership_set
from exports.models import Export
from exports.tasks import export_build_task
from tests.factories import UserFactory, annotator, campaign_with_comparisons
from training.models import TrainingJob

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PACKAGE = "pickwise_client"
PASSWORD = "pw-for-tests-1"  # UserFactory's
TINY_OPTIONS = {"resolution": 32, "train_batch_size": 2, "max_train_steps": 4}


@pytest.fixture(autouse=True)
def _exports_and_jobs_in_tmp(settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path / "exports"
    settings.TRAINING_ROOT = tmp_path / "training"
    settings.PUBLIC_BASE_URL = ""


@pytest.fixture
def client_package(live_server, tmp_path):
    """The client package generated from the live server's schema, imported."""
    reply = httpx.get(f"{live_server.url}/api/schema/?format=json", timeout=60)
    reply.raise_for_status()
    schema = tmp_path / "schema.json"
    schema.write_bytes(reply.content)
    config = tmp_path / "generator.json"
    config.write_text(json.dumps({"package_name_override": PACKAGE, "post_hooks": []}))
    generator = Path(sys.executable).with_name("openapi-python-client")
    result = subprocess.run(
        [
            str(generator),
            "generate",
            f"--path={schema}",
            f"--output-path={tmp_path / PACKAGE}",
            "--meta=none",
            f"--config={config}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The generator reports every schema piece it could not turn into code as a warning.
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def submodule(package, name: str):
    return importlib.import_module(f"{package.__name__}.{name}")


def test_a_generated_client_annotates_exports_and_starts_training(
    client_package, live_server, tmp_path
):
    api = client_package
    models = submodule(api, "models")
    token_obtain = submodule(api, "api.auth.token_obtain")
    campaign_list = submodule(api, "api.campaigns.campaign_list")
    assignment_next = submodule(api, "api.campaigns.assignment_next")
    judgment_submit = submodule(api, "api.assignments.judgment_submit")
    export_create = submodule(api, "api.exports.export_create")
    export_get = submodule(api, "api.exports.export_get")
    export_file = submodule(api, "api.exports.export_file")
    training_job_start = submodule(api, "api.training_jobs.training_job_start")
    training_job_get = submodule(api, "api.training_jobs.training_job_get")

    campaign = campaign_with_comparisons(prompts=4, models=("model-a", "model-b"), overlap=2)
    rater = annotator(campaign, username="rater")
    annotator(campaign, username="second-rater")
    researcher = UserFactory(username="researcher")
    membership_set(campaign=campaign, user=researcher, role="researcher")

    def login(username: str):
        anonymous = api.Client(base_url=live_server.url)
        body = models.TokenObtainRequest(username=username, password=PASSWORD)
        response = token_obtain.sync_detailed(client=anonymous, body=body)
        assert response.status_code == 200, response.content
        # The generator's default prefix, Bearer, is the scheme the schema declares.
        return api.AuthenticatedClient(base_url=live_server.url, token=response.parsed.token)

    wrong = token_obtain.sync_detailed(
        client=api.Client(base_url=live_server.url),
        body=models.TokenObtainRequest(username="rater", password="not-the-password"),
    )
    assert wrong.status_code == 400
    assert wrong.parsed.code == "invalid_credentials"

    # Annotate every comparison as both raters, through next and submit.
    for username in ("rater", "second-rater"):
        client = login(username)
        (listed,) = campaign_list.sync(client=client)
        assert listed.id == campaign.pk
        while True:
            response = assignment_next.sync_detailed(
                campaign.pk, client=client, body=models.AssignmentNextRequest()
            )
            if response.status_code == 204:
                break
            assert response.status_code == 200, response.content
            task = response.parsed
            answers = models.JudgmentSubmitRequestAnswers.from_dict({"overall": task.images[0].uid})
            submitted = judgment_submit.sync_detailed(
                task.id, client=client, body=models.JudgmentSubmitRequest(answers=answers)
            )
            assert submitted.status_code == 201, submitted.content
    assert Judgment.objects.filter(annotator=rater).count() == 4
    assert Judgment.objects.count() == 8

    # Export as the researcher; the worker's task builds it.
    client = login("researcher")
    created = export_create.sync_detailed(
        client=client,
        body=models.ExportCreateRequest(campaign=campaign.pk, format_="pickapic"),
    )
    assert created.status_code == 202, created.content
    export_id = created.parsed.id
    export_build_task.apply(args=[export_id])
    export = export_get.sync(export_id, client=client)
    assert export.status == models.ExportStatusEnum.FINISHED
    names = [item.name for item in export.files]
    assert "manifest.json" in names
    manifest = json.loads(
        export_file.sync(export_id, "manifest.json", client=client).payload.read()
    )
    assert manifest["export"]["format"] == "pickapic"
    shard = next(name for name in names if name.endswith(".parquet"))
    downloaded = export_file.sync(export_id, shard, client=client).payload.read()
    exported = Export.objects.get(pk=export_id)
    assert downloaded == (Path(exported.folder) / shard).read_bytes()

    # Start training on it (the job is queued; no worker runs it here).
    base = tmp_path / "base-model"
    base.mkdir()
    (base / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    started = training_job_start.sync_detailed(
        client=client,
        body=models.TrainingJobStartRequest(
            export=export_id,
            pretrained=str(base),
            method=models.TrainingMethodEnum.MAPO,
            options=models.TrainingJobStartRequestOptions.from_dict(TINY_OPTIONS),
        ),
    )
    assert started.status_code == 202, started.content
    job = training_job_get.sync(started.parsed.id, client=client)
    assert job.status == models.TrainingJobStatusEnum.QUEUED
    assert job.method == models.TrainingMethodEnum.MAPO
    assert TrainingJob.objects.get(pk=job.id).options["max_train_steps"] == 4
