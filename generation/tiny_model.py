"""A tiny, randomly initialised Stable Diffusion pipeline, built entirely offline.

Tests, the generation backend and the trainer need a real diffusers pipeline but may never
download weights. This module builds one from the same "dummy components" configs that
diffusers' own tests use, with a locally written byte-level BPE tokenizer, and saves it as a
normal pipeline folder (model_index.json + components), loadable with both
``StableDiffusionPipeline.from_pretrained(folder)`` and
``DiffusionPipeline.from_pretrained(folder)``.

Usage::

    python -m generation.tiny_model OUT_DIR [--seed 0]

From code::

    from generation.tiny_model import write_tiny_pipeline, cached_tiny_pipeline_dir
    folder = write_tiny_pipeline("/tmp/tiny", seed=0)
    folder = cached_tiny_pipeline_dir()  # one shared copy per process, e.g. for a session fixture
    reward_dir = write_tiny_clip_model("/tmp/clip")  # a PickScore-shaped CLIP for reward tests
    pipe = build_sd15_sized_pipeline(device="cuda", dtype="float16")  # GPU benchmarks

The VAE downsamples by 2 and the UNet by 2, so the pipeline takes any width/height divisible
by 4; the generation backend asks for multiples of 8 (32 and 64 px are the usual test sizes). torch, diffusers and transformers are imported inside
the functions so that importing this module costs nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from diffusers import StableDiffusionPipeline

VOCAB_SIZE = 1000
SD15_VOCAB_SIZE = 49408
MODEL_MAX_LENGTH = 77
START_OF_TEXT = "<|startoftext|>"
END_OF_TEXT = "<|endoftext|>"
# A few merges so that the BPE is exercised; the result of each merge joins the vocabulary.
MERGES = (
    ("t", "h"),
    ("th", "e</w>"),
    ("i", "n"),
    ("a", "n"),
    ("o", "n"),
    ("e", "r"),
    ("c", "a"),
    ("ca", "t</w>"),
    ("d", "o"),
    ("do", "g</w>"),
)
# The betas of Stable Diffusion; DDPMScheduler(**NOISE_SCHEDULE) is the matching training scheduler.
NOISE_SCHEDULE = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}
# steps_offset=1 as in SD1.5's own scheduler config (diffusers warns about 0).
DDIM_CONFIG = {**NOISE_SCHEDULE, "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1}


def byte_level_alphabet() -> list[str]:
    """The 256 printable characters GPT-2/CLIP byte-level BPE uses for the 256 byte values."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(code) for code in codes]


def tiny_vocab() -> dict[str, int]:
    """Token to id in CLIP's order: bytes, bytes + ``</w>``, merges, then the special tokens."""
    alphabet = byte_level_alphabet()
    tokens = alphabet + [char + "</w>" for char in alphabet]
    tokens += ["".join(pair) for pair in MERGES]
    tokens += [START_OF_TEXT, END_OF_TEXT]
    vocab = {token: index for index, token in enumerate(tokens)}
    assert len(vocab) == len(tokens) <= VOCAB_SIZE
    return vocab


def write_tokenizer_files(folder: Path, *, vocab_size: int = VOCAB_SIZE) -> Path:
    """Write vocab.json and merges.txt for a CLIPTokenizer; every id stays below vocab_size."""
    vocab = tiny_vocab()
    if len(vocab) > vocab_size:
        raise ValueError(f"tiny vocabulary has {len(vocab)} tokens, more than {vocab_size}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges = "#version: 0.2\n" + "".join(f"{left} {right}\n" for left, right in MERGES)
    (folder / "merges.txt").write_text(merges, encoding="utf-8")
    return folder


def build_tiny_tokenizer(*, vocab_size: int = VOCAB_SIZE):
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory(prefix="pickwise-tok-") as tmp:
        write_tokenizer_files(Path(tmp), vocab_size=vocab_size)
        return CLIPTokenizer.from_pretrained(tmp, model_max_length=MODEL_MAX_LENGTH)


def build_tiny_pipeline(seed: int = 0) -> StableDiffusionPipeline:
    """Build the tiny pipeline in memory (float32, CPU). Same seed, same weights."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=8,
        norm_num_groups=2,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=[4, 8],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        norm_num_groups=2,
        sample_size=64,
    )
    torch.manual_seed(seed)
    # The text model pools at the end-of-text token, so its config must know the real id.
    text_config = CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        hidden_size=8,
        intermediate_size=16,
        layer_norm_eps=1e-05,
        num_attention_heads=2,
        num_hidden_layers=2,
        projection_dim=8,
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=MODEL_MAX_LENGTH,
    )
    text_encoder = CLIPTextModel(text_config)
    scheduler = DDIMScheduler(**DDIM_CONFIG)
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def build_sd15_sized_pipeline(
    *, seed: int = 0, device: str = "cpu", dtype: str = "float32"
) -> StableDiffusionPipeline:
    """Stable Diffusion 1.5's architecture from its public configs, with random weights.

    For GPU benchmarks: true speed and memory without downloading weights. Modules are built
    directly on ``device``. The tokenizer is the tiny one (ids fit the 49408-token embedding).
    """
    import torch
    from diffusers import (
        AutoencoderKL,
        DPMSolverMultistepScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    torch_dtype = getattr(torch, dtype)
    tokenizer = build_tiny_tokenizer(vocab_size=SD15_VOCAB_SIZE)
    with torch.device(device):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=64,
            in_channels=4,
            out_channels=4,
            layers_per_block=2,
            block_out_channels=(320, 640, 1280, 1280),
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
            cross_attention_dim=768,
            attention_head_dim=8,
        )
        torch.manual_seed(seed)
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=["DownEncoderBlock2D"] * 4,
            up_block_types=["UpDecoderBlock2D"] * 4,
            block_out_channels=[128, 256, 512, 512],
            layers_per_block=2,
            latent_channels=4,
            sample_size=512,
        )
        torch.manual_seed(seed)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                hidden_size=768,
                intermediate_size=3072,
                num_attention_heads=12,
                num_hidden_layers=12,
                max_position_embeddings=MODEL_MAX_LENGTH,
                vocab_size=SD15_VOCAB_SIZE,
                hidden_act="quick_gelu",
                projection_dim=768,
            )
        )
    pipe = StableDiffusionPipeline(
        unet=unet.to(torch_dtype),
        vae=vae.to(torch_dtype),
        text_encoder=text_encoder.to(torch_dtype),
        tokenizer=tokenizer,
        scheduler=DPMSolverMultistepScheduler(**NOISE_SCHEDULE, steps_offset=1),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def write_tiny_pipeline(out_dir: str | Path, seed: int = 0) -> Path:
    """Build and save the tiny pipeline to out_dir; writing twice to one folder is fine."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pipe = build_tiny_pipeline(seed=seed)
    # safe_serialization writes .safetensors; the saved folder then loads without pickle.
    pipe.save_pretrained(out, safe_serialization=True)
    # transformers saves tokenizer.json only; the plain BPE files keep the folder readable by
    # other tokenizer loaders too (tokenizer.json still wins when both are present).
    write_tokenizer_files(out / "tokenizer")
    return out


def write_tiny_clip_model(out_dir: str | Path, seed: int = 0) -> Path:
    """A tiny random CLIP model and processor, laid out like a local PickScore folder.

    For tests of reward scoring (generation.backends.reward) without downloading PickScore.
    """
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    out = Path(out_dir)
    tokenizer = build_tiny_tokenizer()
    small = {"hidden_size": 8, "intermediate_size": 16, "num_attention_heads": 2}
    config = CLIPConfig(
        text_config={
            **small,
            "num_hidden_layers": 1,
            "vocab_size": VOCAB_SIZE,
            "max_position_embeddings": MODEL_MAX_LENGTH,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={**small, "num_hidden_layers": 1, "image_size": 32, "patch_size": 8},
        projection_dim=8,
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(out)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)
    return out


_cache_lock = threading.Lock()
_cached_dirs: dict[int, Path] = {}


def cached_tiny_pipeline_dir(seed: int = 0) -> Path:
    """A tiny pipeline written once per process to a temp folder (removed at interpreter exit).

    Meant for a session-scoped pytest fixture, e.g. in conftest.py::

        @pytest.fixture(scope="session")
        def tiny_pipeline_dir():
            return cached_tiny_pipeline_dir()

    Treat the folder as read-only: it is shared by every caller in the process.
    """
    with _cache_lock:
        folder = _cached_dirs.get(seed)
        if folder is None or not (folder / "model_index.json").exists():
            import atexit

            root = Path(tempfile.mkdtemp(prefix="pickwise-tiny-sd-"))
            atexit.register(shutil.rmtree, root, ignore_errors=True)
            folder = write_tiny_pipeline(root / "pipeline", seed=seed)
            _cached_dirs[seed] = folder
        return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("out_dir", type=Path, help="folder to write the pipeline into")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random weights")
    args = parser.parse_args(argv)
    folder = write_tiny_pipeline(args.out_dir, seed=args.seed)
    print(f"tiny Stable Diffusion pipeline written to {folder}")


if __name__ == "__main__":
    main()
