"""DPO training step: our trainer's step vs straightforward reference-style steps, same run.

    python bench/gpu_dpo.py                         # on the lent GPU: SD1.5 UNet, 512 px, 8 pairs
    python bench/gpu_dpo.py --variants none,full    # also ours with other checkpointing modes
    python bench/gpu_dpo.py --no-ours-compile       # ours without torch.compile
    python bench/gpu_dpo.py --baseline-checkpointing full   # the anchor's checkpointing figure
    python bench/gpu_dpo.py --tiny                  # CPU smoke test: tiny models, 64 px, 2 steps

Models are built from the public SD1.5 configurations with random weights (no download): the
UNet (block_out_channels 320,640,1280,1280, cross_attention_dim 768, attention_head_dim 8,
layers_per_block 2, sample_size 64), the VAE (128,256,512,512) and the CLIP ViT-L/14 text
encoder. LoRA rank 8 on to_q, to_k, to_v, to_out.0 in every path. Steps measured:

- ours: ``training.trainer.step.compute_pair_loss`` on cached latent mean/std and caption embeddings, the
  reference by disabling the adapters, frozen base in bf16, bf16 autocast, AdamW on fp32 LoRA
  weights, clipping 1.0, and the trainer's speed and memory options: by default what we expect
  to be best on an H100/H200, selective activation checkpointing (``--ours-checkpointing``),
  channels-last (``--no-ours-channels-last``) and torch.compile of the UNet
  (``--no-ours-compile``; compile time is spent in the warm-up steps). Reading the cache is
  left out: the trainer's data-loader workers overlap it with the GPU.
- diffusers-style: what diffusers' ``train_diffusion_dpo.py`` does each step: VAE encode of the
  2B images and the text encoder on the prompts, reference by disabling the adapters, weights in
  fp16, fp16 autocast with a gradient scaler.
- second-UNet: as diffusers-style, but the reference is a second full UNet in fp16 (the official
  DiffusionDPO code's layout).
- ours[MODE] (``--variants``): ours with another activation-checkpointing mode, the other
  options unchanged.

Each path is built, warmed up and timed in turn, repeated ``--repeats`` times interleaved; the
table gives the median pairs/s and the peak memory (weights included) of each path. The summary
line compares ours with diffusers-style (target in specs/benchmarks.md: at least 2x pairs/s at
no more than 0.6x peak memory). ``bench/dpo_cost.py`` counts FLOPs and activation bytes of the
same paths on the CPU (meta tensors) for predictions without a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.trainer.losses import diffusion_target, dpo_loss, per_sample_mse  # noqa: E402
from training.trainer.step import (  # noqa: E402
    ACTIVATION_CHECKPOINTING,
    Objective,
    add_lora,
    compute_pair_loss,
    keep_lora_input_dtype,
    lora_reference,
    prepare_unet_for_training,
)

LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
SD15_UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    "up_block_types": ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
}
SD15_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
    "sample_size": 512,
}
CLIP_L14_TEXT = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "vocab_size": 49408,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}
SD_BETAS = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}
SCALING_FACTOR = 0.18215


class Setup:
    """Model configurations and sizes for one run (SD1.5 on a GPU, or tiny on the CPU).

    ``device`` "meta" builds the same models without memory (bench/dpo_cost.py): no autocast
    exists there, so every weight, the adapters included, is made in the compute dtype.
    """

    def __init__(self, args: argparse.Namespace, *, device: str | None = None):
        self.tiny = args.tiny
        if device is None:
            device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
        self.device = torch.device(device)
        self.meta = self.device.type == "meta"
        if self.tiny:
            from generation.tiny_model import build_tiny_pipeline

            pipe = build_tiny_pipeline(seed=0)
            self.unet_config = dict(pipe.unet.config)
            self.vae_config = dict(pipe.vae.config)
            self.text_config = pipe.text_encoder.config.to_dict()
            self.resolution, self.pairs = 64, 2
            self.vae_factor = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
        else:
            self.unet_config, self.vae_config = SD15_UNET, SD15_VAE
            self.text_config = CLIP_L14_TEXT
            self.resolution, self.pairs = args.resolution, args.pairs
            self.vae_factor = 8
        self.latent = self.resolution // self.vae_factor
        self.cuda = self.device.type == "cuda"
        # CPU autocast has no gradient scaler path worth timing: bf16 for every path there.
        self.baseline_dtype = torch.float16 if self.cuda or self.meta else torch.bfloat16
        self.ours_dtype = torch.bfloat16 if self.cuda or self.meta else torch.float32
        self.baseline_checkpointing = args.baseline_checkpointing
        self.ours_options = {
            "activation_checkpointing": args.ours_checkpointing,
            "channels_last": args.ours_channels_last,
            "compile": args.ours_compile,
        }

    def autocast(self, dtype: torch.dtype):
        if self.meta:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def unet(self, dtype: torch.dtype):
        from diffusers import UNet2DConditionModel

        with torch.device(self.device):
            unet = UNet2DConditionModel(**self.unet_config)
        unet.requires_grad_(False)
        return unet.to(dtype=dtype)

    def lora_unet(self, dtype: torch.dtype):
        unet = self.unet(dtype)
        add_lora(unet, rank=8, alpha=8, targets=LORA_TARGETS)
        if self.meta:
            for parameter in unet.parameters():
                if parameter.requires_grad:
                    parameter.data = parameter.data.to(dtype)
        unet.train()
        return unet

    def vae(self, dtype: torch.dtype):
        from diffusers import AutoencoderKL

        with torch.device(self.device):
            vae = AutoencoderKL(**self.vae_config)
        return vae.requires_grad_(False).eval().to(dtype=dtype)

    def text_encoder(self, dtype: torch.dtype):
        from transformers import CLIPTextConfig, CLIPTextModel

        with torch.device(self.device):
            model = CLIPTextModel(CLIPTextConfig(**self.text_config))
        return model.requires_grad_(False).eval().to(dtype=dtype)

    def scheduler(self):
        from diffusers import DDPMScheduler

        return DDPMScheduler(**SD_BETAS)


@dataclass
class StepParts:
    """A path's training step in three parts, so dpo_cost.py can count between them.

    ``modules`` names every model the path keeps resident; ``inputs`` the per-step tensors
    it starts from; ``optimizer`` and ``params`` the trained weights.
    """

    forward: Callable[[], torch.Tensor]  # noise, forward passes, loss
    backward: Callable[[torch.Tensor], None]
    update: Callable[[], None]  # clipping, optimizer step, zero_grad
    modules: dict[str, torch.nn.Module]
    inputs: dict[str, torch.Tensor]
    params: list[torch.nn.Parameter]

    def step(self) -> None:
        self.backward(self.forward())
        self.update()


def _optimizer(unet):
    params = [p for p in unet.parameters() if p.requires_grad]
    return params, torch.optim.AdamW(params, lr=1e-5, weight_decay=1e-2)


def ours_parts(setup: Setup, *, activation_checkpointing: str | None = None) -> StepParts:
    """The trainer's step on cached features: one UNet with adapters, nothing else resident."""
    dtype = setup.ours_dtype
    unet = setup.lora_unet(dtype)
    if dtype != torch.float32:
        keep_lora_input_dtype(unet)
    options = dict(setup.ours_options)
    if activation_checkpointing is not None:
        options["activation_checkpointing"] = activation_checkpointing
    if setup.meta:
        options["compile"] = False  # counting runs eagerly; compile changes neither count
    prepare_unet_for_training(unet, **options)
    params, optimizer = _optimizer(unet)
    scheduler = setup.scheduler()
    hidden = unet.config.cross_attention_dim
    shape = (setup.pairs, 4, setup.latent, setup.latent)
    batch = {
        "mean_w": torch.randn(shape, device=setup.device),
        "std_w": torch.rand(shape, device=setup.device) * 0.01,
        "mean_l": torch.randn(shape, device=setup.device),
        "std_l": torch.rand(shape, device=setup.device) * 0.01,
        "embedding": torch.randn(setup.pairs, 77, hidden, device=setup.device),
    }
    if setup.meta:  # no autocast to cast them on the way in
        batch = {key: value.to(dtype) for key, value in batch.items()}
    reference = lora_reference(unet)
    objective = Objective()

    def forward():
        with setup.autocast(torch.bfloat16):
            out = compute_pair_loss(
                unet=unet,
                batch=batch,
                noise_scheduler=scheduler,
                scaling_factor=SCALING_FACTOR,
                objective=objective,
                reference=reference,
            )
        return out.loss

    def update():
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return StepParts(
        forward=forward,
        backward=lambda loss: loss.backward(),
        update=update,
        modules={"unet": unet},
        inputs=batch,
        params=params,
    )


def straightforward_parts(setup: Setup, *, second_unet: bool) -> StepParts:
    """Reference-style step: encode images and prompts every step, fp16 with a scaler."""
    dtype = setup.baseline_dtype
    unet = setup.lora_unet(dtype)
    if setup.baseline_checkpointing == "full":
        unet.enable_gradient_checkpointing()
    vae = setup.vae(dtype)
    text_encoder = setup.text_encoder(dtype)
    reference_unet = setup.unet(dtype).eval() if second_unet else None
    params, optimizer = _optimizer(unet)
    scaler = torch.amp.GradScaler("cuda", enabled=setup.cuda and dtype == torch.float16)
    scheduler = setup.scheduler()
    pixels = torch.rand(2 * setup.pairs, 3, setup.resolution, setup.resolution) * 2 - 1
    pixels = pixels.to(setup.device, dtype)
    vocab = setup.text_config["vocab_size"]
    input_ids = torch.randint(0, vocab, (setup.pairs, 77), device=setup.device)

    def reference(noisy, timesteps, embeddings):
        if reference_unet is not None:
            return reference_unet(noisy, timesteps, embeddings).sample
        unet.disable_adapters()
        try:
            return unet(noisy, timesteps, embeddings).sample
        finally:
            unet.enable_adapters()

    def forward():
        with setup.autocast(dtype):
            with torch.no_grad():
                latents = vae.encode(pixels).latent_dist.sample() * SCALING_FACTOR
                embeddings = text_encoder(input_ids)[0].repeat(2, 1, 1)
            noise = torch.randn_like(latents[: setup.pairs]).repeat(2, 1, 1, 1)
            timesteps = torch.randint(0, 1000, (setup.pairs,), device=setup.device).repeat(2)
            noisy = scheduler.add_noise(latents, noise, timesteps)
            target = diffusion_target(
                prediction_type="epsilon",
                scheduler=scheduler,
                latents=latents,
                noise=noise,
                timesteps=timesteps,
            )
            model_w, model_l = per_sample_mse(
                unet(noisy, timesteps, embeddings).sample, target
            ).chunk(2)
            with torch.no_grad():
                ref_w, ref_l = per_sample_mse(
                    reference(noisy, timesteps, embeddings), target
                ).chunk(2)
            return dpo_loss(model_w, model_l, ref_w, ref_l).loss

    def update():
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    modules = {"unet": unet, "vae": vae, "text_encoder": text_encoder}
    if reference_unet is not None:
        modules["reference_unet"] = reference_unet
    return StepParts(
        forward=forward,
        backward=lambda loss: scaler.scale(loss).backward(),
        update=update,
        modules=modules,
        inputs={"pixels": pixels, "input_ids": input_ids},
        params=params,
    )


def ours(setup: Setup, **options):
    return ours_parts(setup, **options).step


def straightforward(setup: Setup, *, second_unet: bool):
    return straightforward_parts(setup, second_unet=second_unet).step


def paths_for(variants: list[str]) -> dict[str, Callable]:
    """Path name -> builder of its step; ``variants`` adds ours with other checkpointing."""
    paths: dict[str, Callable] = {"ours": ours}
    for mode in variants:
        paths[f"ours[{mode}]"] = lambda setup, mode=mode: ours(setup, activation_checkpointing=mode)
    paths["diffusers-style"] = lambda setup: straightforward(setup, second_unet=False)
    paths["second-UNet"] = lambda setup: straightforward(setup, second_unet=True)
    return paths


def _sync(setup: Setup) -> None:
    if setup.cuda:
        torch.cuda.synchronize()


def measure(setup: Setup, build, *, warmup: int, steps: int) -> tuple[float, float]:
    """Pairs per second over ``steps`` timed steps, and peak memory in GiB (weights included)."""
    gc.collect()
    if setup.cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    # A fresh module would otherwise count against dynamo's recompile limit on each repeat.
    torch._dynamo.reset()
    torch.manual_seed(0)
    step = build(setup)
    for _ in range(warmup):
        step()
    _sync(setup)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(setup)
    elapsed = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**30 if setup.cuda else float("nan")
    del step
    return setup.pairs * steps / elapsed, peak


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models on the CPU, 2 steps")
    parser.add_argument("--pairs", type=int, default=8, help="pairs per step")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument(
        "--warmup", type=int, default=3, help="untimed steps (compile happens here)"
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--ours-checkpointing",
        choices=ACTIVATION_CHECKPOINTING,
        default="selective",
        help="activation checkpointing of our step (the trainer's --activation-checkpointing)",
    )
    parser.add_argument(
        "--ours-channels-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="channels-last UNet in our step (the trainer's --channels-last)",
    )
    parser.add_argument(
        "--ours-compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile our UNet (the trainer's --torch-compile); default on a GPU, off "
        "with --tiny",
    )
    parser.add_argument(
        "--variants",
        default="",
        help="comma-separated extra checkpointing modes of ours to time, e.g. none,full",
    )
    parser.add_argument(
        "--baseline-checkpointing",
        choices=("none", "full"),
        default="none",
        help="diffusers' gradient checkpointing in the diffusers-style and second-UNet paths "
        "(the anchor has figures for both)",
    )
    parser.add_argument(
        "--paths",
        default="",
        help="comma-separated subset of paths to run (default all); diffusers-style is always "
        "run, as is ours: the summary compares them",
    )
    args = parser.parse_args(argv)
    if args.tiny:
        args.warmup, args.steps, args.repeats = 1, 2, 1
    if args.ours_compile is None:
        args.ours_compile = not args.tiny
    args.variants = [v for v in args.variants.split(",") if v]
    for mode in args.variants:
        if mode not in ACTIVATION_CHECKPOINTING:
            parser.error(f"--variants: {mode!r} is not one of {ACTIVATION_CHECKPOINTING}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import diffusers

    # Casting random-weight models to half precision is intended here; keep the output a table.
    diffusers.utils.logging.set_verbosity_error()
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    setup = Setup(args)
    paths = paths_for(args.variants)
    if args.paths:
        wanted = {name for name in args.paths.split(",") if name} | {"ours", "diffusers-style"}
        unknown = wanted - set(paths)
        if unknown:
            raise SystemExit(f"--paths: unknown {sorted(unknown)}; known {sorted(paths)}")
        paths = {name: build for name, build in paths.items() if name in wanted}

    import peft
    import transformers

    machine = torch.cuda.get_device_name() if setup.cuda else platform.processor() or "cpu"
    print("DPO training step benchmark")
    print(
        f"  machine: {machine}, {os.cpu_count()} CPUs; python {platform.python_version()}, "
        f"torch {torch.__version__}, diffusers {diffusers.__version__}, "
        f"transformers {transformers.__version__}, peft {peft.__version__}"
    )
    print(
        f"  models: {'tiny random' if setup.tiny else 'SD1.5 architecture, random weights'}; "
        f"{setup.resolution} px ({setup.latent}x{setup.latent} latents), {setup.pairs} pairs "
        f"({2 * setup.pairs} images) per step, LoRA rank 8"
    )
    print(
        f"  ours: activation checkpointing {args.ours_checkpointing}, channels-last "
        f"{args.ours_channels_last}, torch.compile {args.ours_compile}; baselines: gradient "
        f"checkpointing {args.baseline_checkpointing}"
    )
    print(
        f"  timing: {args.warmup} warm-up + {args.steps} timed steps per path, "
        f"{args.repeats} interleaved repeat(s), median reported; device {setup.device}"
    )

    rates: dict[str, list[float]] = {name: [] for name in paths}
    peaks: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.repeats):
        for name, build in paths.items():
            rate, peak = measure(setup, build, warmup=args.warmup, steps=args.steps)
            rates[name].append(rate)
            peaks[name].append(peak)

    base_rate = statistics.median(rates["diffusers-style"])
    base_peak = max(peaks["diffusers-style"])
    print()
    print(f"{'path':<16} {'pairs/s':>9} {'range':>17} {'peak GiB':>9} {'speed':>7} {'memory':>7}")
    for name in paths:
        rate, peak = statistics.median(rates[name]), max(peaks[name])
        spread = f"{min(rates[name]):.2f}..{max(rates[name]):.2f}"
        memory_cells = (
            f"{peak:>9.2f} {rate / base_rate:>6.2f}x {peak / base_peak:>6.2f}x"
            if setup.cuda
            else f"{'n/a':>9} {rate / base_rate:>6.2f}x {'n/a':>7}"
        )
        print(f"{name:<16} {rate:>9.2f} {spread:>17} {memory_cells}")
    speed = statistics.median(rates["ours"]) / base_rate
    print()
    if not setup.cuda:
        print(
            f"summary: ours {speed:.2f}x the pairs/s of the diffusers-style step; no GPU, so no "
            "memory figures [tiny CPU smoke run: the figures say nothing about the GPU]"
        )
        return
    memory = max(peaks["ours"]) / base_peak
    verdict = "meets" if speed >= 2 and memory <= 0.6 else "misses"
    print(
        f"summary: ours {statistics.median(rates['ours']):.2f} pairs/s at "
        f"{max(peaks['ours']):.2f} GiB peak = {speed:.2f}x the pairs/s and {memory:.2f}x the "
        f"memory of the diffusers-style step; {verdict} the target (>= 2x at <= 0.6x)"
    )


if __name__ == "__main__":
    main()
