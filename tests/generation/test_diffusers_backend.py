import hashlib
import io
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
pytest.importorskip("diffusers")

from PIL import Image  # noqa: E402

from generation.backends import (  # noqa: E402
    BackendOptions,
    GeneratorSpec,
    SpecError,
    encode_png,
    validate_spec,
)
from generation.backends import spec as spec_module  # noqa: E402
from generation.backends.diffusers_backend import generate_batch, padded_size  # noqa: E402
from generation.backends.pipelines import PipelineCache  # noqa: E402
from generation.backends.reward import (  # noqa: E402
    ERROR_REWARD_DIR_MISSING,
    PickScoreScorer,
    RewardModelError,
    reward_scorer_from_settings,
)
from generation.tiny_model import cached_tiny_pipeline_dir, write_tiny_clip_model  # noqa: E402
from tests.generation.pixels import PIXEL_TOLERANCE  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_dir():
    return cached_tiny_pipeline_dir()


@pytest.fixture
def spec(tiny_dir):
    return GeneratorSpec(name="tiny", source=str(tiny_dir), steps=2, width=32, height=32)


@pytest.fixture
def cache():
    return PipelineCache(size=2)


def pixels(generated):
    return np.asarray(generated.image, dtype=np.int16)


def max_difference(first, second):
    return int(np.abs(pixels(first) - pixels(second)).max())


@pytest.mark.numerics
def test_it_returns_decodable_png_images_with_their_metadata(spec, cache):
    items = [("a cat", None, 7), ("a dog", "blurry", 8)]
    images = generate_batch(replace(spec, negative_prompt="ugly"), items, cache=cache)

    assert [image.seed for image in images] == [7, 8]
    for generated in images:
        data, digest = generated.png_and_sha256()
        assert digest == hashlib.sha256(data).hexdigest()
        decoded = Image.open(io.BytesIO(data))
        assert decoded.format == "PNG"
        assert decoded.size == (32, 32)
        # PNG is lossless: the decoded pixels are the generated ones exactly.
        assert np.array_equal(np.asarray(decoded.convert("RGB")), np.asarray(generated.image))
    metadata = images[1].metadata
    assert metadata["prompt"] == "a dog"
    assert metadata["negative_prompt"] == "blurry"
    assert images[0].metadata["negative_prompt"] == "ugly"
    assert metadata["seed"] == 8
    assert metadata["steps"] == 2
    assert metadata["guidance"] == 7.5
    assert metadata["scheduler"] == "DDIMScheduler"
    assert metadata["dtype"] == "float32"
    assert (metadata["width"], metadata["height"]) == (32, 32)
    assert metadata["device"] == "cpu"
    assert metadata["diffusers_version"]
    assert metadata["torch_version"] == torch.__version__
    assert metadata["seconds_per_image"] > 0


def test_png_bytes_depend_only_on_the_pixels_unless_text_is_embedded():
    image = Image.new("RGB", (8, 8), "red")
    assert encode_png(image) == encode_png(image.copy())
    tagged = Image.open(io.BytesIO(encode_png(image, text={"seed": "3"})))
    assert tagged.text == {"seed": "3"}


@pytest.mark.numerics
def test_a_batch_gives_the_same_images_as_one_call_per_image(spec, cache):
    items = [("a cat", None, 1), ("a dog", "blurry", 2), ("the cat", None, 3)]
    batched = generate_batch(spec, items, cache=cache)
    single = [generate_batch(spec, [item], cache=cache)[0] for item in items]

    assert [image.metadata["batch_size"] for image in batched] == [3, 3, 3]
    for together, alone in zip(batched, single, strict=True):
        assert max_difference(together, alone) <= PIXEL_TOLERANCE


@pytest.mark.numerics
def test_chunking_and_padding_do_not_change_the_images(spec, cache):
    items = [("a cat", None, seed) for seed in range(5)]
    whole = generate_batch(spec, items, cache=cache)
    chunked = generate_batch(spec, items, options=BackendOptions(max_batch_size=2), cache=cache)
    padded = generate_batch(
        spec, items, options=BackendOptions(max_batch_size=4, pad_batches=True), cache=cache
    )

    assert [image.metadata["batch_size"] for image in chunked] == [2, 2, 2, 2, 1]
    assert [image.metadata["batch_size"] for image in padded] == [4, 4, 4, 4, 1]
    assert [image.seed for image in padded] == list(range(5))
    for reference, other, more in zip(whole, chunked, padded, strict=True):
        assert max_difference(reference, other) <= PIXEL_TOLERANCE
        assert max_difference(reference, more) <= PIXEL_TOLERANCE


@pytest.mark.numerics
def test_different_seeds_give_different_images_and_the_same_seed_repeats(spec, cache):
    items = [("a cat", None, 1), ("a cat", None, 2)]
    first, second = generate_batch(spec, items, cache=cache)
    again = generate_batch(spec, items, cache=cache)[0]

    assert max_difference(first, second) > 20  # other noise: tens of levels, not rounding
    # The same call in the same process runs the same kernels on the same inputs: exact.
    assert np.array_equal(pixels(first), pixels(again))


def test_the_spec_scheduler_replaces_the_saved_one_for_that_call(spec, cache):
    euler = replace(spec, scheduler="EulerAncestralDiscreteScheduler")
    swapped = generate_batch(euler, [("a cat", None, 1)], cache=cache)[0]
    default = generate_batch(spec, [("a cat", None, 1)], cache=cache)[0]

    assert swapped.metadata["scheduler"] == "EulerAncestralDiscreteScheduler"
    assert default.metadata["scheduler"] == "DDIMScheduler"
    assert max_difference(swapped, default) > 0
    assert cache.loads == 1


def test_the_cache_loads_a_pipeline_once_and_evicts_the_least_recently_used(spec, cache):
    generate_batch(spec, [("a cat", None, 1)], cache=cache)
    generate_batch(replace(spec, steps=3, width=64, height=64), [("a", None, 1)], cache=cache)
    assert cache.loads == 1

    as_bf16 = replace(spec, dtype="bfloat16")
    other_source = replace(spec, source=spec.source + "/")
    first = cache.get(spec, BackendOptions())
    cache.get(as_bf16, BackendOptions())
    assert cache.loads == 2
    cache.get(spec, BackendOptions())  # refreshes spec, so as_bf16 is now the oldest
    cache.get(other_source, BackendOptions())
    assert cache.loads == 3
    assert len(cache) == 2
    assert cache.get(spec, BackendOptions()) is first
    cache.get(as_bf16, BackendOptions())
    assert cache.loads == 4


def test_it_runs_attention_through_pytorch_sdpa(spec, cache):
    from diffusers.models.attention_processor import AttnProcessor2_0

    loaded = cache.get(spec, BackendOptions())
    processors = set(map(type, loaded.pipe.unet.attn_processors.values()))
    assert processors == {AttnProcessor2_0}


@pytest.mark.numerics
def test_fused_qkv_and_channels_last_give_the_same_images(spec, cache):
    items = [("a cat", None, 1), ("a dog", None, 2)]
    plain = generate_batch(spec, items, cache=cache)
    fast = generate_batch(
        spec, items, options=BackendOptions(fuse_qkv=True, channels_last=True), cache=cache
    )
    assert cache.loads == 2
    for reference, other in zip(plain, fast, strict=True):
        assert max_difference(reference, other) <= PIXEL_TOLERANCE


@pytest.mark.numerics
def test_a_short_chunk_is_padded_to_the_next_power_of_two_within_the_max_batch(spec, cache):
    assert [padded_size(real, BackendOptions(max_batch_size=16)) for real in (1, 3, 8, 9, 16)] == [
        1,
        4,
        8,
        16,
        16,
    ]
    assert padded_size(9, BackendOptions(max_batch_size=12)) == 12
    items = [("a cat", None, seed) for seed in range(3)]
    plain = generate_batch(spec, items, cache=cache)
    padded = generate_batch(
        spec, items, options=BackendOptions(max_batch_size=16, pad_batches=True), cache=cache
    )
    assert [image.metadata["batch_size"] for image in padded] == [4, 4, 4]
    for reference, other in zip(plain, padded, strict=True):
        assert max_difference(reference, other) <= PIXEL_TOLERANCE


@pytest.mark.numerics
@pytest.mark.parametrize(
    "options",
    [
        BackendOptions(channels_last=True),
        BackendOptions(fuse_qkv=True),
        BackendOptions(max_batch_size=16, pad_batches=True, channels_last=True, fuse_qkv=True),
    ],
    ids=["channels_last", "fuse_qkv", "padded_fused_channels_last"],
)
def test_each_fast_option_gives_the_plain_images(spec, cache, options):
    items = [("a cat", None, 1), ("a dog", "blurry", 2), ("a cow", None, 3)]
    plain = generate_batch(spec, items, cache=cache)
    fast = generate_batch(spec, items, options=options, cache=cache)
    for reference, other in zip(plain, fast, strict=True):
        assert max_difference(reference, other) <= PIXEL_TOLERANCE


@pytest.mark.numerics
@pytest.mark.slow
def test_the_fast_preset_with_inductor_compile_gives_the_plain_images(spec, cache):
    # The whole preset: compiled UNet and VAE decoder (inductor on the CPU), fused QKV,
    # channels-last, padded batches. Compiling takes a few minutes here.
    items = [("a cat", None, 1), ("a dog", None, 2), ("a cow", None, 3)]
    plain = generate_batch(spec, items, cache=cache)
    options = BackendOptions.fast(device="cpu")
    if torch.backends.cpu.get_cpu_capability() == "DEFAULT":
        # Forced to ATen's portable kernels (scripts/test-numerics.sh), inductor generates
        # scalar code, but max-autotune's CPU templates still emit at::vec code that then fails
        # to compile ("'at::vec' has not been declared"): a torch limitation no processor with
        # a vector unit meets. Inductor's default mode compiles the same graphs without them.
        options = replace(options, compile_mode="default")
    fast = generate_batch(spec, items, options=options, cache=cache)
    assert [image.metadata["batch_size"] for image in fast] == [4, 4, 4]
    for reference, other in zip(plain, fast, strict=True):
        assert max_difference(reference, other) <= PIXEL_TOLERANCE


def test_png_bytes_encoded_in_the_background_equal_the_direct_encoding(spec, cache):
    items = [("a cat", None, seed) for seed in range(3)]
    made = generate_batch(spec, items, options=BackendOptions(max_batch_size=2), cache=cache)
    for image in made:
        data, digest = image.png_and_sha256()
        assert data == encode_png(image.image)
        assert digest == hashlib.sha256(data).hexdigest()
        assert Image.open(io.BytesIO(data)).size == (32, 32)


def test_a_bad_item_is_rejected_before_anything_is_loaded(spec, cache):
    with pytest.raises(ValueError, match="Seeds must be whole numbers"):
        generate_batch(spec, [("a cat", None, -1)], cache=cache)
    with pytest.raises(ValueError, match="Prompts must be text"):
        generate_batch(spec, [(None, None, 1)], cache=cache)
    assert generate_batch(spec, [], cache=cache) == []
    assert cache.loads == 0


def test_validate_spec_names_a_missing_folder(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(SpecError) as raised:
        validate_spec(GeneratorSpec(name="x", source=str(missing)))
    assert raised.value.errors == {"source": f"The pipeline folder {missing} does not exist."}


def test_validate_spec_rejects_a_folder_without_model_index(tmp_path):
    with pytest.raises(SpecError) as raised:
        validate_spec(GeneratorSpec(name="x", source=str(tmp_path)))
    assert raised.value.errors["source"] == spec_module.ERROR_NOT_A_PIPELINE.format(source=tmp_path)


def test_validate_spec_rejects_a_scheduler_the_pipeline_cannot_use(spec):
    with pytest.raises(SpecError) as raised:
        validate_spec(replace(spec, scheduler="FlowMatchEulerDiscreteScheduler"))
    message = raised.value.errors["scheduler"]
    assert message.startswith("Unknown scheduler FlowMatchEulerDiscreteScheduler for this pipeline")
    assert "DPMSolverMultistepScheduler" in message
    with pytest.raises(SpecError, match="not a diffusers scheduler class name"):
        validate_spec(replace(spec, scheduler="dpm++ 2m"))
    for name in ("DPMSolverMultistepScheduler", "EulerDiscreteScheduler", "DDIMScheduler"):
        assert validate_spec(replace(spec, scheduler=name))


def test_validate_spec_reports_every_bad_field_at_once(spec):
    bad = replace(spec, name=" ", width=30, height=0, steps=0, guidance=-1, dtype="int8")
    with pytest.raises(SpecError) as raised:
        validate_spec(bad)
    assert set(raised.value.errors) == {"name", "width", "height", "steps", "guidance", "dtype"}
    assert raised.value.errors["width"] == (
        "Width must be a multiple of 8 from 8 to 4096 pixels, got 30."
    )


def test_validate_spec_accepts_a_hub_id_without_touching_the_network():
    hub = GeneratorSpec(name="sd15", source="owner/model", scheduler="EulerDiscreteScheduler")
    assert validate_spec(hub) is hub
    with pytest.raises(SpecError, match="neither an existing folder nor a hub id"):
        validate_spec(replace(hub, source="no such thing"))


def test_the_worker_rejects_an_incompatible_scheduler_when_it_loads(spec, cache):
    loaded = cache.get(spec, BackendOptions())
    with pytest.raises(SpecError, match="Unknown scheduler FlowMatchEulerDiscreteScheduler"):
        loaded.make_scheduler("FlowMatchEulerDiscreteScheduler", {})


def test_the_static_scheduler_list_matches_diffusers():
    from diffusers.schedulers.scheduling_utils import KarrasDiffusionSchedulers

    assert {item.name for item in KarrasDiffusionSchedulers} == spec_module.KARRAS_SCHEDULERS


def test_importing_the_spec_side_does_not_import_torch():
    code = (
        "import sys, generation.backends, generation.backends.reward; "
        "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


def test_backend_options_come_from_the_environment():
    options = BackendOptions.from_env(
        {"PICKWISE_GENERATION_MAX_BATCH_SIZE": "12", "PICKWISE_GENERATION_COMPILE": "yes"}
    )
    assert options.max_batch_size == 12
    assert options.compile is True
    assert BackendOptions.from_env({}) == BackendOptions()
    assert BackendOptions.from_env({"PICKWISE_GENERATION_PRESET": "fast"}).fuse_qkv is True
    with pytest.raises(ValueError, match="PICKWISE_GENERATION_COMPILE='maybe'"):
        BackendOptions.from_env({"PICKWISE_GENERATION_COMPILE": "maybe"})
    with pytest.raises(ValueError, match="max_batch_size must be at least 1"):
        BackendOptions(max_batch_size=0)


def test_reward_scoring_is_off_by_default():
    assert reward_scorer_from_settings(environ={}) is None


def test_reward_scoring_names_a_missing_folder(tmp_path):
    missing = tmp_path / "pickscore"
    with pytest.raises(RewardModelError) as raised:
        reward_scorer_from_settings(environ={"PICKWISE_REWARD_MODEL_DIR": str(missing)})
    assert str(raised.value) == ERROR_REWARD_DIR_MISSING.format(folder=missing)


def test_a_local_clip_model_scores_prompt_image_pairs(tmp_path):
    write_tiny_clip_model(tmp_path)

    scorer = PickScoreScorer(tmp_path)
    images = [Image.new("RGB", (40, 40), "red"), Image.new("RGB", (40, 40), "blue")]
    scores = scorer.score(["a cat", "a dog"], images)
    assert len(scores) == 2
    assert scores[0] != scores[1]
    with pytest.raises(RewardModelError, match="must pair up"):
        scorer.score(["a cat"], images)


def _write_random_lora(tiny_dir, folder):
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(tiny_dir, subfolder="unet")
    torch.manual_seed(0)
    # init_lora_weights=False: random A and B, so the adapter really changes the output.
    config = LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=["to_q", "to_v"])
    unet.add_adapter(config)
    state = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(
        save_directory=folder, unet_lora_layers=state, safe_serialization=True
    )
    return folder


@pytest.mark.numerics
def test_a_lora_is_fused_into_its_own_cached_pipeline(spec, cache, tiny_dir, tmp_path):
    lora_dir = _write_random_lora(tiny_dir, tmp_path / "lora")
    tuned = replace(spec, lora_path=str(lora_dir))
    assert validate_spec(tuned)

    base_image = generate_batch(spec, [("a cat", None, 1)], cache=cache)[0]
    tuned_image = generate_batch(tuned, [("a cat", None, 1)], cache=cache)[0]

    assert cache.loads == 2
    assert tuned_image.metadata["lora_path"] == str(lora_dir)
    assert max_difference(base_image, tuned_image) > 0
    tuned_unet = cache.get(tuned, BackendOptions()).pipe.unet
    assert not any("lora" in name for name, _ in tuned_unet.named_parameters())
    # The base pipeline in the cache is untouched by the other entry's LoRA: the same kernels
    # on the same weights and inputs give the same pixels exactly.
    again = generate_batch(spec, [("a cat", None, 1)], cache=cache)[0]
    assert np.array_equal(pixels(base_image), pixels(again))


def test_validate_spec_names_a_missing_or_empty_lora_folder(spec, tmp_path):
    with pytest.raises(SpecError) as raised:
        validate_spec(replace(spec, lora_path=str(tmp_path / "none")))
    assert raised.value.errors == {
        "lora_path": spec_module.ERROR_LORA_MISSING.format(path=tmp_path / "none")
    }
    with pytest.raises(SpecError, match="has no .safetensors weights"):
        validate_spec(replace(spec, lora_path=str(tmp_path)))
