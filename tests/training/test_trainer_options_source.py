"""The web side's trainer options come from training.trainer.config, both ways, without torch."""

import subprocess
import sys
from dataclasses import fields

import pytest

from frontend.forms import TrainingStartForm
from training.options import OPTIONS, options_clean
from training.trainer.config import (
    JOB_OPTIONS,
    METHODS,
    MODES,
    DPOConfig,
    TrainerInputError,
)

NOT_JOB_OPTIONS = {
    "data",
    "pretrained",
    "output",
    "split",
    "method",
    "mode",
    "lora_targets",
    "resume",
    "cache_dir",
    "metrics_file",
}


@pytest.fixture
def paths(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model_index.json").write_text("{}")
    return {"data": tmp_path, "pretrained": model, "output": tmp_path / "out"}


def test_the_web_options_are_the_config_fields_a_job_may_set_and_no_other():
    config_names = {spec.name for spec in fields(DPOConfig)}
    assert set(OPTIONS) == set(JOB_OPTIONS) == config_names - NOT_JOB_OPTIONS
    for spec in fields(DPOConfig):
        if spec.name in OPTIONS:
            option = OPTIONS[spec.name]
            assert option.default == spec.default, spec.name
            assert option.choices == spec.metadata["choices"], spec.name
            assert option.positive == spec.metadata["positive"], spec.name
            assert option.non_negative == spec.metadata["non_negative"], spec.name


def test_the_trainer_accepts_every_default_the_web_side_offers(paths):
    defaults = {name: option.default for name, option in OPTIONS.items()}
    cleaned, problems = options_clean(method="dpo", mode="lora", options=defaults)
    assert problems == []
    config = DPOConfig(**paths, **cleaned)
    assert {name: getattr(config, name) for name in cleaned} == cleaned


def _refusals(name, value, paths):
    _cleaned, web = options_clean(method="dpo", mode="lora", options={name: value})
    with pytest.raises(TrainerInputError) as trainer:
        DPOConfig(**paths, **{name: value})
    return web, str(trainer.value)


@pytest.mark.parametrize("name", [name for name, o in OPTIONS.items() if o.positive])
def test_a_positive_option_at_zero_is_refused_by_both_with_one_sentence(name, paths):
    value = 0.0 if OPTIONS[name].kind is float else 0
    web, trainer = _refusals(name, value, paths)
    assert web == [f"{name} must be > 0."]
    assert f"{name} must be > 0" in trainer


@pytest.mark.parametrize("name", [name for name, o in OPTIONS.items() if o.non_negative])
def test_a_non_negative_option_below_zero_is_refused_by_both(name, paths):
    web, trainer = _refusals(name, -1, paths)
    assert web == [f"{name} must be >= 0."]
    assert f"{name} must be >= 0" in trainer


@pytest.mark.parametrize("name", [name for name, o in OPTIONS.items() if o.choices])
def test_an_option_outside_its_choices_is_refused_by_both(name, paths):
    web, trainer = _refusals(name, "most", paths)
    assert len(web) == 1 and web[0].startswith(f"{name} must be one of")
    assert web[0].rstrip(".") in trainer


def test_the_fine_tune_form_offers_the_config_choices_and_defaults():
    form = TrainingStartForm(model_folders=[])
    assert [value for value, _label in form.fields["method"].choices] == list(METHODS)
    assert [value for value, _label in form.fields["mode"].choices] == list(MODES)
    for name in TrainingStartForm.OPTION_FIELDS:
        assert name in OPTIONS, name
        field = form.fields[name]
        if field.initial is not None:
            assert field.initial == OPTIONS[name].default, name
        if OPTIONS[name].positive:
            assert field.min_value is not None and field.min_value > 0, name


def test_the_config_and_web_options_load_without_torch():
    code = (
        "import sys, training.options, training.trainer.config; "
        "assert 'torch' not in sys.modules and 'django' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
