"""The procedural backend: picked for procedural: sources, deterministic, run by real jobs."""

import io
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from PIL import Image as PILImage

from annotate.models import Comparison, Image
from generation.backends import GeneratorSpec, SpecError, backend_for, validate_spec
from generation.backends.procedural import generate_batch
from generation.backends.scenes import parse_prompt
from generation.models import GenerationItem, Generator
from generation.services.jobs import generation_job_create
from generation.services.sync import generation_job_run_sync
from tests.factories import CampaignFactory, PromptFactory
from tests.generation.scene_reading import see_bytes, shows

REPO = Path(__file__).resolve().parents[2]


def _spec(faithfulness: str = "faithful", **fields) -> GeneratorSpec:
    return GeneratorSpec(
        name=f"sketch-{faithfulness}",
        source=f"procedural:{faithfulness}",
        width=fields.pop("width", 128),
        height=fields.pop("height", 128),
        **fields,
    )


def test_the_same_seed_gives_the_same_png_and_another_seed_another():
    spec = _spec()
    items = [("two red circles on the left", None, 1), ("two red circles on the left", None, 2)]
    first, second = generate_batch(spec, items)
    again = generate_batch(spec, items[:1])[0]
    assert first.png_and_sha256() == again.png_and_sha256()
    assert first.png() != second.png()
    with PILImage.open(io.BytesIO(first.png())) as decoded:
        assert decoded.size == (128, 128)


def test_the_metadata_says_what_was_asked_and_what_was_drawn():
    prompt = "three blue fish at the top and a yellow sun at the bottom"
    for faithfulness in ("faithful", "sloppy", "careless"):
        for seed in range(6):
            made = generate_batch(_spec(faithfulness), [(prompt, "blurry", seed)])[0]
            meta = made.metadata
            assert meta["asked"] == prompt
            assert meta["faithfulness"] == faithfulness
            assert (meta["seed"], meta["negative_prompt"]) == (seed, "blurry")
            assert bool(meta["mistakes"]) == (meta["drawn"] != prompt)
            assert shows(parse_prompt(meta["drawn"]), see_bytes(made.png()))
            if faithfulness == "faithful":
                assert meta["drawn"] == prompt


def test_bad_items_and_sources_are_refused_before_any_drawing():
    with pytest.raises(ValueError, match="Prompts must be text"):
        generate_batch(_spec(), [(None, None, 1)])
    with pytest.raises(ValueError, match="Seeds must be whole numbers"):
        generate_batch(_spec(), [("a sun", None, -1)])
    with pytest.raises(SpecError, match="procedural:perfect is not a procedural model"):
        validate_spec(_spec("perfect"))


def test_a_prompt_outside_the_vocabulary_gets_an_empty_canvas_and_the_reason():
    made = generate_batch(_spec(), [("a portrait of a cat", None, 1)])[0]
    assert "names nothing these models can draw" in made.metadata["unreadable"]
    assert made.metadata["drawn"] == ""
    assert see_bytes(made.png()) == []


def test_procedural_specs_validate_and_pick_the_procedural_backend():
    assert validate_spec(_spec("careless")).source == "procedural:careless"
    assert backend_for(_spec()) is generate_batch


@pytest.mark.django_db
def test_a_generator_row_with_a_procedural_source_is_valid_and_a_misspelt_one_is_not():
    Generator(name="ok", source="procedural:sloppy").full_clean()
    with pytest.raises(ValidationError, match="not a procedural model"):
        Generator(name="bad", source="procedural:slopy").full_clean()


def test_drawing_through_the_backend_never_imports_torch():
    code = (
        "import sys\n"
        "from generation.backends import GeneratorSpec, backend_for\n"
        "spec = GeneratorSpec(name='s', source='procedural:sloppy', width=64, height=64)\n"
        "images = backend_for(spec)(spec, [('a red house', None, 3)])\n"
        "assert len(images[0].png()) > 100\n"
        "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules, 'torch loaded'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.django_db
def test_a_generation_job_draws_the_prompts_and_compares_the_models():
    campaign = CampaignFactory()
    prompt = "two green trees on the left and a red car on the right"
    PromptFactory(campaign=campaign, text=prompt)
    PromptFactory(campaign=campaign, text="a portrait of a cat")
    generators = [
        Generator.objects.create(name=f"sketch-{f}", source=f"procedural:{f}", width=96, height=96)
        for f in ("faithful", "careless")
    ]
    job = generation_job_create(
        campaign=campaign, generators=generators, seeds_per_prompt=2, gold_count=0
    )
    job = generation_job_run_sync(job=job, worker="test")

    assert job.status == "done"
    assert not GenerationItem.objects.filter(job=job).exclude(status="done").exists()
    images = Image.objects.filter(prompt__campaign=campaign)
    assert images.count() == 8
    assert {image.params["pipeline"] for image in images} == {"procedural"}
    faithful = images.filter(prompt__text=prompt, model_name="sketch-faithful")
    for image in faithful:
        with image.file.open("rb") as handle:
            assert shows(parse_prompt(prompt), see_bytes(handle.read()))
    assert all(i.params["unreadable"] for i in images.filter(prompt__text__contains="cat"))
    # Pairs across the two models, 2 x 2 per prompt.
    assert Comparison.objects.filter(campaign=campaign, role="regular").count() == 8
