"""Every path a user names is confined to the model roots, and a refusal is no oracle: the
same answer for a forbidden and a missing path, naming no server path."""

import pytest

from generation.models import Generator
from pickwise.model_folders import ERROR_MODEL_FOLDER_UNAVAILABLE
from tests.factories import user_as
from tests.training.jobs_support import TINY_OPTIONS, finished_export
from training.models import TrainingJob

URL = "/api/training-jobs/"
FORBIDDEN = ["/etc", "/root", "/proc/1", "/", "/etc/../etc", "relative/../../../etc"]


@pytest.fixture
def roots(settings, tmp_path, training_dirs):
    models = tmp_path / "models"
    models.mkdir()
    settings.PICKWISE_MODEL_ROOTS = [models]
    pipeline = models / "base"
    pipeline.mkdir()
    (pipeline / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    reference = models / "reference"
    reference.mkdir()
    return {"models": models, "pipeline": pipeline, "reference": reference, "tmp": tmp_path}


def _refused_paths(roots, *, nul=True):
    outside = roots["tmp"] / "outside"
    outside.mkdir(exist_ok=True)
    return [
        *FORBIDDEN,
        str(outside),  # exists, outside the roots
        str(roots["tmp"] / "nowhere"),  # missing, outside
        str(roots["models"] / "nowhere"),  # missing, inside
        *([str(roots["models"] / "x\x00y")] if nul else []),
    ]


def _start(api_client, export, **fields):
    body = {"export": export.pk, "options": {**TINY_OPTIONS}, **fields}
    return api_client.post(URL, body, format="json")


@pytest.mark.django_db
def test_a_reference_model_outside_the_roots_or_missing_gets_one_answer(api_client, roots):
    export = finished_export(prompts=4)
    api_client.force_authenticate(user_as(export.campaign, "researcher"))
    expected = {
        "detail": ERROR_MODEL_FOLDER_UNAVAILABLE.format(field="reference_model"),
        "code": "model_unavailable",
    }
    for path in _refused_paths(roots, nul=False):
        response = _start(
            api_client,
            export,
            pretrained=str(roots["pipeline"]),
            mode="full",
            options={**TINY_OPTIONS, "reference_model": path},
        )
        assert (response.status_code, response.json()) == (400, expected), path
    # A NUL never reaches the path check: the JSON parser refuses the body whatever the path.
    response = _start(
        api_client,
        export,
        pretrained=str(roots["pipeline"]),
        mode="full",
        options={**TINY_OPTIONS, "reference_model": str(roots["models"] / "x\x00y")},
    )
    assert (response.status_code, response.json()["code"]) == (400, "parse_error")
    assert str(roots["tmp"]) not in response.json()["detail"]
    assert not TrainingJob.objects.exists()

    response = _start(
        api_client,
        export,
        pretrained=str(roots["pipeline"]),
        mode="full",
        options={**TINY_OPTIONS, "reference_model": str(roots["reference"])},
    )
    assert response.status_code == 202, response.json()
    assert TrainingJob.objects.get().options["reference_model"] == str(roots["reference"])


@pytest.mark.django_db
def test_a_base_model_outside_the_roots_or_missing_gets_one_answer(api_client, roots):
    export = finished_export(prompts=4)
    api_client.force_authenticate(user_as(export.campaign, "researcher"))
    answers = set()
    # (A NUL byte in the pretrained field is refused by the serializer, before any path check.)
    for path in _refused_paths(roots, nul=False):
        response = _start(api_client, export, pretrained=path)
        assert response.status_code == 400, path
        answers.add(tuple(sorted(response.json().items())))
    assert answers == {
        (
            ("code", "model_unavailable"),
            ("detail", ERROR_MODEL_FOLDER_UNAVAILABLE.format(field="pretrained")),
        )
    }
    assert not TrainingJob.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["source", "lora_path"])
def test_generator_folders_outside_the_roots_or_missing_get_one_answer(roots, field):
    from django.core.exceptions import ValidationError

    messages = set()
    for path in _refused_paths(roots):
        generator = Generator(name="g", steps=2, width=32, height=32, source="owner/model")
        setattr(generator, field, path)
        with pytest.raises(ValidationError) as raised:
            generator.full_clean()
        messages.add(tuple(raised.value.message_dict.get(field, [])))
    assert messages == {(ERROR_MODEL_FOLDER_UNAVAILABLE.format(field=field),)}


def test_the_refusal_names_no_server_path(roots):
    message = ERROR_MODEL_FOLDER_UNAVAILABLE.format(field="reference_model")
    assert "/" not in message and str(roots["models"]) not in message
