"""Generator specs are validated on save: a bad spec is a form error, not a worker crash."""

import pytest
from django.core.exceptions import ValidationError
from django.utils.html import escape

from generation.models import Generator
from generation.tiny_model import cached_tiny_pipeline_dir
from pickwise.model_folders import ERROR_MODEL_FOLDER_UNAVAILABLE

pytestmark = pytest.mark.django_db


def tiny(**fields) -> Generator:
    values = {
        "name": "tiny",
        "source": str(cached_tiny_pipeline_dir()),
        "steps": 2,
        "width": 32,
        "height": 32,
    }
    return Generator(**{**values, **fields})


def test_a_generator_on_a_real_pipeline_folder_is_valid():
    generator = tiny(
        scheduler="EulerDiscreteScheduler", scheduler_options={"timestep_spacing": "trailing"}
    )
    generator.full_clean()
    spec = generator.to_spec()
    assert (spec.scheduler, spec.pipeline_class, spec.scheduler_options) == (
        "EulerDiscreteScheduler",
        None,
        {"timestep_spacing": "trailing"},
    )


def test_a_missing_folder_gets_the_same_answer_as_a_forbidden_one(tmp_path):
    with pytest.raises(ValidationError) as raised:
        tiny(source=str(tmp_path / "nowhere")).full_clean()
    assert raised.value.message_dict == {
        "source": [ERROR_MODEL_FOLDER_UNAVAILABLE.format(field="source")]
    }


def test_an_unknown_scheduler_is_refused():
    with pytest.raises(ValidationError) as raised:
        tiny(scheduler="FlowMatchEulerDiscreteScheduler").full_clean()
    assert raised.value.message_dict["scheduler"][0].startswith(
        "Unknown scheduler FlowMatchEulerDiscreteScheduler for this pipeline; compatible:"
    )


def test_sizes_and_loras_are_checked(tmp_path):
    with pytest.raises(ValidationError) as raised:
        tiny(width=30, lora_path=str(tmp_path / "no-lora")).full_clean()
    errors = raised.value.message_dict
    assert errors["width"] == ["Width must be a multiple of 8 from 8 to 4096 pixels, got 30."]
    assert errors["lora_path"] == [ERROR_MODEL_FOLDER_UNAVAILABLE.format(field="lora_path")]


def test_the_admin_form_shows_a_bad_spec_as_a_field_error(client, tmp_path):
    from tests.factories import UserFactory

    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    response = client.post(
        "/admin/generation/generator/add/",
        {
            "name": "broken",
            "source": str(tmp_path / "nowhere"),
            "steps": 2,
            "guidance": 7.5,
            "width": 64,
            "height": 64,
            "dtype": "auto",
            "extra": "{}",
            "scheduler_options": "{}",
        },
    )
    assert response.status_code == 200
    message = ERROR_MODEL_FOLDER_UNAVAILABLE.format(field="source")
    assert escape(message) in response.content.decode()
    assert not Generator.objects.exists()


def test_a_pipeline_outside_the_model_roots_is_refused_without_saying_if_it_exists(
    settings, tmp_path
):
    settings.PICKWISE_MODEL_ROOTS = [tmp_path / "models"]
    settings.TRAINING_ROOT = tmp_path / "training"
    for source in (str(cached_tiny_pipeline_dir()), "/etc/passwd-folder"):
        with pytest.raises(ValidationError) as raised:
            tiny(source=source).full_clean()
        (message,) = raised.value.message_dict["source"]
        assert message == ERROR_MODEL_FOLDER_UNAVAILABLE.format(field="source")


def test_a_lora_outside_the_model_roots_is_refused(settings, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "pytorch_lora_weights.safetensors").write_bytes(b"x")
    settings.PICKWISE_MODEL_ROOTS = [cached_tiny_pipeline_dir().parent]
    with pytest.raises(ValidationError) as raised:
        tiny(lora_path=str(outside)).full_clean()
    assert list(raised.value.message_dict) == ["lora_path"]


def test_a_link_inside_a_root_that_points_outside_is_refused(settings, tmp_path):
    root = tmp_path / "models"
    root.mkdir()
    (root / "linked").symlink_to(cached_tiny_pipeline_dir(), target_is_directory=True)
    settings.PICKWISE_MODEL_ROOTS = [root]
    with pytest.raises(ValidationError) as raised:
        tiny(source=str(root / "linked")).full_clean()
    assert raised.value.message_dict["source"] == [
        ERROR_MODEL_FOLDER_UNAVAILABLE.format(field="source")
    ]
    settings.PICKWISE_MODEL_ROOTS = [root, cached_tiny_pipeline_dir().parent]
    tiny(source=str(root / "linked")).full_clean()


def test_hub_ids_are_not_local_folders_and_need_no_root(settings, tmp_path):
    settings.PICKWISE_MODEL_ROOTS = [tmp_path]
    tiny(source="stable-diffusion-v1-5/stable-diffusion-v1-5").full_clean()
