"""Generation throughput: our worker path vs plain ``pipe(prompts)`` calls, in one run.

Stable Diffusion 1.5's architecture with random weights (built from its public configs, so no
download), 512 px, 25 DPMSolver steps, CFG 7.5, float16. Measures images/s of

  * plain ``pipe(prompts)`` at batch 1 and batch 8 (diffusers defaults: fp16 + SDPA), and
  * the worker path: ``generate_batch`` (the code the generate worker runs) with the fast
    options (a bigger batch, fused QKV, channels-last, torch.compile of UNet and VAE decoder),
    then, as the worker does for each image, its PNG bytes and sha256 and a file write into a
    folder (what Django's FileSystemStorage does). PNG encoding runs in the backend's threads
    while the next chunk is on the GPU, so its timing includes whatever of it is not hidden.
    The plain calls stop at PIL images,

plus peak GPU memory of each, and prints one summary line against the target
(worker at least 1.5x the plain batch-8 call). Weights are saved to a temp folder so the
worker loads them through ``from_pretrained`` like production.

Usage (on the lent GPU)::

    python bench/gpu_generate.py                       # full benchmark, a few minutes
    python bench/gpu_generate.py --compile-mode max-autotune-no-cudagraphs  # slower warm-up
    python bench/gpu_generate.py --tiny                # CPU smoke test in seconds

Figures are medians over --repeats timed rounds after a warm-up round per configuration.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import diffusers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

from generation.backends import BackendOptions, GeneratorSpec  # noqa: E402
from generation.backends.diffusers_backend import generate_batch  # noqa: E402
from generation.backends.options import COMPILE_MODES  # noqa: E402
from generation.backends.pipelines import PipelineCache  # noqa: E402
from generation.tiny_model import build_sd15_sized_pipeline, build_tiny_pipeline  # noqa: E402

TARGET_RATIO = 1.5
PROMPTS = [
    "a photograph of an astronaut riding a horse",
    "a watercolor painting of a lighthouse at dawn",
    "a bowl of ramen, studio lighting, 85mm",
    "an isometric pixel-art city at night",
    "a corgi wearing sunglasses on a beach",
    "an oil painting of a stormy sea, dramatic light",
    "a macro photo of a dew-covered spider web",
    "a futuristic train station, concept art",
]


@dataclass
class Row:
    path: str
    batch: int
    images: int
    images_per_s: float
    spread: str
    peak_gib: float | None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tiny", action="store_true", help="tiny pipeline on CPU (smoke test)")
    parser.add_argument("--steps", type=int, default=None, help="25 (4 with --tiny)")
    parser.add_argument("--size", type=int, default=None, help="512 (64 with --tiny)")
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--images", type=int, default=None, help="per timed round; 32 (8 tiny)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per configuration")
    parser.add_argument("--worker-batch", type=int, default=16, help="worker max_batch_size")
    parser.add_argument(
        "--compile-mode",
        choices=COMPILE_MODES,
        default="default",
        help="torch.compile mode for the worker; max-autotune modes tune longer (minutes)",
    )
    parser.add_argument("--no-compile", action="store_true", help="worker without torch.compile")
    parser.add_argument("--no-fuse-qkv", action="store_true")
    parser.add_argument("--no-channels-last", action="store_true")
    return parser.parse_args(argv)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated() / 2**30


def describe_machine(device: torch.device) -> str:
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB), {os.cpu_count()} CPUs"
    return f"CPU only: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"


def prompts_for(count: int) -> list[str]:
    return [PROMPTS[index % len(PROMPTS)] for index in range(count)]


def time_rounds(run, *, images: int, repeats: int, device: torch.device):
    """Warm-up once, then ``repeats`` timed rounds; returns (median images/s, spread, peak)."""
    run()
    sync(device)
    reset_peak(device)
    rates = []
    for _ in range(repeats):
        sync(device)
        started = time.perf_counter()
        run()
        sync(device)
        rates.append(images / (time.perf_counter() - started))
    spread = f"{min(rates):.2f}-{max(rates):.2f}"
    return statistics.median(rates), spread, peak_gib(device)


def plain_rows(pipe, *, args, device) -> list[Row]:
    """diffusers as a user would call it: fp16 weights on the GPU, pipe(list of prompts)."""
    rows = []
    for batch in (1, 8):
        # Batch 1 is slow and steady: a quarter of the images is enough for a stable rate.
        count = args.images if batch == 8 else max(1, args.images // 4)
        prompts = prompts_for(count)

        def run(prompts=prompts, batch=batch):
            for start in range(0, len(prompts), batch):
                chunk = prompts[start : start + batch]
                pipe(
                    chunk,
                    num_inference_steps=args.steps,
                    guidance_scale=args.guidance,
                    width=args.size,
                    height=args.size,
                    generator=[torch.Generator("cpu").manual_seed(seed) for seed in range(batch)],
                )

        rate, spread, peak = time_rounds(run, images=count, repeats=args.repeats, device=device)
        rows.append(Row("plain pipe()", batch, count, rate, spread, peak))
    return rows


def worker_row(folder: Path, *, args, device, dtype: str) -> tuple[Row, BackendOptions, float]:
    options = BackendOptions.fast(
        max_batch_size=args.worker_batch,
        compile=not args.no_compile and not args.tiny,
        compile_vae=not args.no_compile and not args.tiny,
        compile_mode=args.compile_mode,
        fuse_qkv=not args.no_fuse_qkv,
        channels_last=not args.no_channels_last,
        device=str(device),
    )
    spec = GeneratorSpec(
        name="bench",
        source=str(folder),
        scheduler="DPMSolverMultistepScheduler",
        steps=args.steps,
        guidance=args.guidance,
        width=args.size,
        height=args.size,
        dtype=dtype,
    )
    items = [(prompt, None, seed) for seed, prompt in enumerate(prompts_for(args.images))]
    cache = PipelineCache(size=1)
    started = time.perf_counter()
    generate_batch(spec, items[: args.worker_batch], options=options, cache=cache)
    sync(device)
    warm_up_s = time.perf_counter() - started

    store = Path(tempfile.mkdtemp(prefix="pickwise-bench-store-"))

    def run():
        for index, image in enumerate(generate_batch(spec, items, options=options, cache=cache)):
            data, digest = image.png_and_sha256()
            (store / f"{index}-{digest[:16]}.png").write_bytes(data)

    rate, spread, peak = time_rounds(run, images=len(items), repeats=args.repeats, device=device)
    shutil.rmtree(store, ignore_errors=True)
    row = Row("worker (+PNG, store)", args.worker_batch, len(items), rate, spread, peak)
    return row, options, warm_up_s


def main(argv=None) -> None:
    args = parse_args(argv)
    args.steps = args.steps or (4 if args.tiny else 25)
    args.size = args.size or (64 if args.tiny else 512)
    args.images = args.images or (8 if args.tiny else 32)
    if args.images % 8:
        raise SystemExit("--images must be a multiple of 8 (the plain batch)")
    device = torch.device("cpu") if args.tiny else torch.device("cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device; use --tiny for the CPU smoke test")
    dtype = "float32" if args.tiny else "float16"

    print(f"machine: {describe_machine(device)}")
    print(
        f"versions: python {platform.python_version()}, torch {torch.__version__}, "
        f"diffusers {diffusers.__version__}, transformers {transformers.__version__}"
    )
    model = "tiny random SD" if args.tiny else "SD1.5 architecture, random weights"
    print(
        f"set-up: {model}, {args.size} px, {args.steps} steps DPMSolverMultistep, "
        f"CFG {args.guidance}, {dtype}, {args.images} images per round, "
        f"median of {args.repeats} rounds after a warm-up"
    )

    started = time.perf_counter()
    if args.tiny:
        pipe = build_tiny_pipeline(seed=0)
        from diffusers import DPMSolverMultistepScheduler

        pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    else:
        pipe = build_sd15_sized_pipeline(seed=0, device=str(device), dtype=dtype)
    pipe.to(device)
    sync(device)
    print(f"built the pipeline in {time.perf_counter() - started:.1f} s")

    rows = plain_rows(pipe, args=args, device=device)

    with tempfile.TemporaryDirectory(prefix="pickwise-bench-") as tmp:
        started = time.perf_counter()
        pipe.save_pretrained(tmp, safe_serialization=True)
        print(f"saved the weights for the worker path in {time.perf_counter() - started:.1f} s")
        del pipe
        if device.type == "cuda":
            torch.cuda.empty_cache()
        row, options, warm_up_s = worker_row(Path(tmp), args=args, device=device, dtype=dtype)
        rows.append(row)

    print(
        f"worker options: batch {options.max_batch_size}, fuse_qkv {options.fuse_qkv}, "
        f"channels_last {options.channels_last}, compile {options.compile} "
        f"(vae {options.compile_vae}, mode {options.compile_mode}); "
        f"load + first batch (compile) {warm_up_s:.1f} s"
    )
    print()
    header = f"{'path':<24}{'batch':>6}{'images':>8}{'images/s':>10}{'range':>14}{'peak GiB':>10}"
    print(header)
    print("-" * len(header))
    for item in rows:
        peak = "n/a" if item.peak_gib is None else f"{item.peak_gib:.2f}"
        print(
            f"{item.path:<24}{item.batch:>6}{item.images:>8}{item.images_per_s:>10.2f}"
            f"{item.spread:>14}{peak:>10}"
        )
    print()
    plain_1, plain_8, worker = rows
    ratio = worker.images_per_s / plain_8.images_per_s
    verdict = "meets" if ratio >= TARGET_RATIO else "misses"
    print(
        f"summary: worker {worker.images_per_s:.2f} images/s = {ratio:.2f}x plain batch 8 "
        f"({plain_8.images_per_s:.2f}; batch 1 {plain_1.images_per_s:.2f}), {verdict} the "
        f"{TARGET_RATIO}x target"
        + (" (tiny CPU smoke test: not a measurement)" if args.tiny else "")
    )


if __name__ == "__main__":
    main()
