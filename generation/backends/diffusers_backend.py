"""Generate images for a generator spec with diffusers, a batch per pipeline call.

The Celery ``generate`` task calls::

    from generation.backends.diffusers_backend import generate_batch
    images = generate_batch(spec, [(prompt, negative_prompt_or_None, seed), ...])
    for item in images:
        data, digest = item.png_and_sha256()  # store through Django's storage with item.metadata

Each image gets its own seeded CPU ``torch.Generator``, so image i depends only on its seed
(and the spec): batching, chunking, padding and the device do not change which noise it starts
from, and a retried task reproduces the same image.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import diffusers
import torch

from .images import GeneratedImage
from .options import BackendOptions
from .pipelines import LoadedPipeline, PipelineCache, default_cache
from .spec import GeneratorSpec, validate_spec

MAX_SEED = 2**63 - 1
ERROR_BAD_SEED = "Seeds must be whole numbers from 0 to 2**63-1, got {value!r}."
ERROR_BAD_PROMPT = "Prompts must be text, got {value!r}."
# A 512 px PNG takes ~0.1-0.3 s of one core; an H200 makes an image every ~0.18 s at batch 8.
PNG_THREADS = max(1, min(4, (os.cpu_count() or 1) - 1))

_png_pool: ThreadPoolExecutor | None = None
_png_pool_lock = threading.Lock()


class GenerationItem(NamedTuple):
    prompt: str
    negative_prompt: str | None
    seed: int


def _normalise(items: Iterable[Sequence], spec: GeneratorSpec) -> list[GenerationItem]:
    normalised = []
    for prompt, negative_prompt, seed in items:
        if not isinstance(prompt, str):
            raise ValueError(ERROR_BAD_PROMPT.format(value=prompt))
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ValueError(ERROR_BAD_SEED.format(value=seed))
        negative = spec.negative_prompt if negative_prompt is None else negative_prompt
        normalised.append(GenerationItem(prompt, negative, seed))
    return normalised


def _chunks(items: list[GenerationItem], size: int) -> Iterable[list[GenerationItem]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _call_kwargs(spec: GeneratorSpec, chunk: list[GenerationItem]) -> dict:
    kwargs = {
        "prompt": [item.prompt for item in chunk],
        "num_inference_steps": spec.steps,
        "guidance_scale": spec.guidance,
        "width": spec.width,
        "height": spec.height,
        # CPU generators: the same seed gives the same starting noise on any device.
        "generator": [torch.Generator("cpu").manual_seed(item.seed) for item in chunk],
        "output_type": "pil",
        **spec.extra,
    }
    negatives = [item.negative_prompt for item in chunk]
    # Not every pipeline takes negative prompts; only pass them when one is set.
    if any(negatives):
        kwargs["negative_prompt"] = negatives
    return kwargs


def padded_size(real: int, options: BackendOptions) -> int:
    """The batch a chunk of ``real`` items is padded to: the next power of two, at most the max.

    A compiled pipeline then sees at most log2(max_batch_size) + 2 shapes, and a task smaller
    than the max batch (PICKWISE_GENERATION_BATCH_SIZE 8 with the fast preset's 16) is not
    padded to twice its size, which would spend half the GPU time on thrown-away images.
    """
    size = 1
    while size < real:
        size *= 2
    return min(size, options.max_batch_size)


def _encoder() -> ThreadPoolExecutor:
    global _png_pool
    with _png_pool_lock:
        if _png_pool is None:
            _png_pool = ThreadPoolExecutor(
                max_workers=PNG_THREADS, thread_name_prefix="pickwise-png"
            )
        return _png_pool


def _run_chunk(
    loaded: LoadedPipeline,
    spec: GeneratorSpec,
    chunk: list[GenerationItem],
    options: BackendOptions,
) -> list[GeneratedImage]:
    real = len(chunk)
    padded = padded_size(real, options) if options.pad_batches else real
    if padded > real:
        # Few shapes for compiled graphs; the padding images are thrown away.
        chunk = chunk + [chunk[-1]] * (padded - real)
    scheduler = loaded.make_scheduler(spec.scheduler, spec.scheduler_options)
    with loaded.lock, torch.inference_mode():
        loaded.pipe.scheduler = scheduler
        started = time.perf_counter()
        output = loaded.pipe(**_call_kwargs(spec, chunk))
        # PIL output has already synchronised with the device, so this is the real time.
        seconds = time.perf_counter() - started
    common = {
        "generator": spec.name,
        "source": spec.source,
        "lora_path": spec.lora_path,
        "pipeline": type(loaded.pipe).__name__,
        "steps": spec.steps,
        "guidance": spec.guidance,
        "scheduler": type(scheduler).__name__,
        "scheduler_options": dict(spec.scheduler_options),
        "dtype": str(loaded.dtype).removeprefix("torch."),
        "width": spec.width,
        "height": spec.height,
        "device": str(loaded.device),
        "batch_size": len(chunk),
        "seconds_per_image": seconds / real,
        "diffusers_version": diffusers.__version__,
        "torch_version": torch.__version__,
    }
    made = [
        GeneratedImage(
            image=image,
            prompt=item.prompt,
            negative_prompt=item.negative_prompt,
            seed=item.seed,
            metadata={
                **common,
                "prompt": item.prompt,
                "negative_prompt": item.negative_prompt,
                "seed": item.seed,
            },
        )
        for item, image in zip(chunk[:real], output.images[:real], strict=True)
    ]
    # PNG encoding (zlib, which releases the GIL) runs in threads while the next chunk is on
    # the GPU and while the caller stores the earlier images; png() waits for its own result.
    pool = _encoder()
    for image in made:
        image.encode_in(pool)
    return made


def generate_batch(
    spec: GeneratorSpec,
    items: Iterable[Sequence],
    *,
    options: BackendOptions | None = None,
    cache: PipelineCache | None = None,
) -> list[GeneratedImage]:
    """Images for (prompt, negative_prompt, seed) items, in order, one call per chunk.

    negative_prompt None means the spec's. Chunks hold at most options.max_batch_size items.
    Raises SpecError for a bad spec and ValueError for a bad item, before any work is done.
    """
    options = options or BackendOptions()
    validate_spec(spec)
    normalised = _normalise(items, spec)
    if not normalised:
        return []
    cache = cache if cache is not None else default_cache(options.cache_size)
    loaded = cache.get(spec, options)
    results: list[GeneratedImage] = []
    for chunk in _chunks(normalised, options.max_batch_size):
        results.extend(_run_chunk(loaded, spec, chunk, options))
    return results
