import json
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from generation.tiny_model import (  # noqa: E402
    VOCAB_SIZE,
    build_tiny_pipeline,
    cached_tiny_pipeline_dir,
    main,
    tiny_vocab,
    write_tiny_pipeline,
)


def _generate(pipe, *, size, seed=0):
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator().manual_seed(seed)
    result = pipe("a cat", num_inference_steps=2, height=size, width=size, generator=generator)
    return result.images[0]


def test_the_vocabulary_has_every_id_below_the_text_models_vocab_size():
    vocab = tiny_vocab()
    assert max(vocab.values()) < VOCAB_SIZE
    assert len(set(vocab.values())) == len(vocab)
    assert {"<|startoftext|>", "<|endoftext|>", "a", "a</w>", "the</w>"} <= set(vocab)


def test_the_text_model_pools_at_the_real_end_of_text_token():
    pipe = build_tiny_pipeline(seed=0)
    eos_id = pipe.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert pipe.text_encoder.config.eos_token_id == eos_id
    ids = pipe.tokenizer("the cat", padding="max_length", max_length=77).input_ids
    assert len(ids) == 77
    assert ids[0] == pipe.tokenizer.bos_token_id
    assert eos_id in ids


@pytest.mark.numerics
def test_the_same_seed_builds_the_same_weights_and_another_seed_does_not():
    first = build_tiny_pipeline(seed=0).unet.state_dict()
    again = build_tiny_pipeline(seed=0).unet.state_dict()
    other = build_tiny_pipeline(seed=1).unet.state_dict()
    name = "conv_in.weight"
    # Initialisation draws from a seeded generator with no float sums: exact, not close.
    assert torch.equal(first[name], again[name])
    assert not torch.equal(first[name], other[name])


def test_the_written_folder_loads_with_both_pipeline_classes_and_generates(tmp_path):
    from diffusers import DiffusionPipeline, StableDiffusionPipeline

    folder = write_tiny_pipeline(tmp_path / "tiny", seed=0)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["safety_checker"] == [None, None]
    assert (folder / "tokenizer" / "merges.txt").read_text().startswith("#version: 0.2\n")

    auto = DiffusionPipeline.from_pretrained(folder)
    assert isinstance(auto, StableDiffusionPipeline)
    assert _generate(auto, size=64).size == (64, 64)
    explicit = StableDiffusionPipeline.from_pretrained(folder)
    assert _generate(explicit, size=32).size == (32, 32)


@pytest.mark.numerics
def test_writing_twice_to_the_same_folder_gives_the_same_pipeline(tmp_path):
    from diffusers import DiffusionPipeline

    folder = write_tiny_pipeline(tmp_path / "tiny", seed=0)
    first = _generate(DiffusionPipeline.from_pretrained(folder), size=32).tobytes()
    write_tiny_pipeline(folder, seed=0)
    second = _generate(DiffusionPipeline.from_pretrained(folder), size=32).tobytes()
    assert first == second


def test_the_command_line_writes_a_pipeline_folder(tmp_path, capsys):
    main([str(tmp_path / "cli")])
    assert (tmp_path / "cli" / "model_index.json").exists()
    assert str(tmp_path / "cli") in capsys.readouterr().out


def test_the_cached_folder_is_written_once_per_process():
    first = cached_tiny_pipeline_dir()
    stamp = (first / "model_index.json").stat().st_mtime_ns
    assert cached_tiny_pipeline_dir() == first
    assert (first / "model_index.json").stat().st_mtime_ns == stamp


def test_the_sd15_sized_builder_has_stable_diffusion_15s_parameter_counts():
    from generation.tiny_model import build_sd15_sized_pipeline

    # On the meta device: the architecture without allocating 4 GB of weights.
    pipe = build_sd15_sized_pipeline(device="meta", dtype="float16")
    counts = {
        name: sum(parameter.numel() for parameter in getattr(pipe, name).parameters())
        for name in ("unet", "vae", "text_encoder")
    }
    assert counts == {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480}
    assert pipe.unet.dtype == torch.float16
    eos_id = pipe.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert pipe.text_encoder.config.eos_token_id == eos_id
    assert type(pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
