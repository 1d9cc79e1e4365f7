"""DPO training step: our trainer's step vs straightforward reference-style steps, same run.

    python bench/gpu_dpo.py                    # on the lent GPU: SD1.5 UNet, 512 px, 8 pairs
    python bench/gpu_dpo.py --checkpointing ours # gradient checkpointing in our step only
    python bench/gpu_dpo.py --tiny             # CPU smoke test: tiny models, 64 px, 2 steps

Models are built from the public SD1.5 configurations with random weights (no download): the
UNet (block_out_channels 320,640,1280,1280, cross_attention_dim 768, attention_head_dim 8,
layers_per_block 2, sample_size 64), the VAE (128,256,512,512) and the CLIP ViT-L/14 text
encoder. LoRA rank 8 on to_q, to_k, to_v, to_out.0 in every path. Steps measured:

- ours: ``training.dpo.compute_pair_loss`` on cached latent mean/std and caption embeddings, the
  reference by disabling the adapters, frozen base in bf16, bf16 autocast, AdamW on fp32 LoRA
  weights, clipping 1.0. Reading the cache is left out: the trainer's data-loader workers
  overlap it with the GPU.
- diffusers-style: what diffusers' ``train_diffusion_dpo.py`` does each step: VAE encode of the
  2B images and the text encoder on the prompts, reference by disabling the adapters, weights in
  fp16, fp16 autocast with a gradient scaler.
- second-UNet: as diffusers-style, but the reference is a second full UNet in fp16 (the official
  DiffusionDPO code's layout).

Each path is built, warmed up and timed in turn, repeated ``--repeats`` times interleaved; the
table gives the median pairs/s and the peak memory (weights included) of each path. The summary
line compares ours with diffusers-style (target in specs/benchmarks.md: at least 2x pairs/s at
no more than 0.6x peak memory).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.dpo_losses import diffusion_target, dpo_loss, per_sample_mse  # noqa: E402
from training.dpo_step import Objective, add_lora, compute_pair_loss, lora_reference  # noqa: E402

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
    """Model configurations and sizes for one run (SD1.5 on a GPU, or tiny on the CPU)."""

    def __init__(self, args: argparse.Namespace):
        self.tiny = args.tiny
        self.device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
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
        self.baseline_dtype = torch.float16 if self.cuda else torch.bfloat16
        self.checkpointing = args.checkpointing

    def unet(self, dtype: torch.dtype):
        from diffusers import UNet2DConditionModel

        with torch.device(self.device):
            unet = UNet2DConditionModel(**self.unet_config)
        unet.requires_grad_(False)
        return unet.to(dtype=dtype)

    def lora_unet(self, dtype: torch.dtype, *, ours: bool):
        unet = self.unet(dtype)
        add_lora(unet, rank=8, alpha=8, targets=LORA_TARGETS)
        if self.checkpointing == "all" or (self.checkpointing == "ours" and ours):
            unet.enable_gradient_checkpointing()
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


def _optimizer(unet):
    params = [p for p in unet.parameters() if p.requires_grad]
    return params, torch.optim.AdamW(params, lr=1e-5, weight_decay=1e-2)


def ours(setup: Setup):
    """The trainer's step on cached features: one UNet with adapters, nothing else resident."""
    unet = setup.lora_unet(torch.bfloat16 if setup.cuda else torch.float32, ours=True)
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
    reference = lora_reference(unet)
    objective = Objective()

    def step():
        with torch.autocast(setup.device.type, dtype=torch.bfloat16):
            out = compute_pair_loss(
                unet=unet,
                batch=batch,
                noise_scheduler=scheduler,
                scaling_factor=SCALING_FACTOR,
                objective=objective,
                reference=reference,
            )
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def straightforward(setup: Setup, *, second_unet: bool):
    """Reference-style step: encode images and prompts every step, fp16 with a scaler."""
    dtype = setup.baseline_dtype
    unet = setup.lora_unet(dtype, ours=False)
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

    def step():
        with torch.autocast(setup.device.type, dtype=dtype):
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
            loss = dpo_loss(model_w, model_l, ref_w, ref_l).loss
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    return step


PATHS = {
    "ours": ours,
    "diffusers-style": lambda setup: straightforward(setup, second_unet=False),
    "second-UNet": lambda setup: straightforward(setup, second_unet=True),
}


def _sync(setup: Setup) -> None:
    if setup.cuda:
        torch.cuda.synchronize()


def measure(setup: Setup, build, *, warmup: int, steps: int) -> tuple[float, float]:
    """Pairs per second over ``steps`` timed steps, and peak memory in GiB (weights included)."""
    gc.collect()
    if setup.cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models on the CPU, 2 steps")
    parser.add_argument("--pairs", type=int, default=8, help="pairs per step")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--checkpointing",
        choices=("none", "ours", "all"),
        default="none",
        help="gradient checkpointing in no path, in our step only (the trainer's "
        "--gradient-checkpointing against the anchor's default), or in every path",
    )
    args = parser.parse_args(argv)
    if args.tiny:
        args.warmup, args.steps, args.repeats = 1, 2, 1
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import diffusers

    # Casting random-weight models to half precision is intended here; keep the output a table.
    diffusers.utils.logging.set_verbosity_error()
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    setup = Setup(args)

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
        f"({2 * setup.pairs} images) per step, LoRA rank 8; gradient checkpointing "
        + {"none": "off", "ours": "in our step only", "all": "in every path"}[args.checkpointing]
    )
    print(
        f"  timing: {args.warmup} warm-up + {args.steps} timed steps per path, "
        f"{args.repeats} interleaved repeat(s), median reported; device {setup.device}"
    )

    rates: dict[str, list[float]] = {name: [] for name in PATHS}
    peaks: dict[str, list[float]] = {name: [] for name in PATHS}
    for _ in range(args.repeats):
        for name, build in PATHS.items():
            rate, peak = measure(setup, build, warmup=args.warmup, steps=args.steps)
            rates[name].append(rate)
            peaks[name].append(peak)

    base_rate = statistics.median(rates["diffusers-style"])
    base_peak = max(peaks["diffusers-style"])
    print()
    print(f"{'path':<16} {'pairs/s':>9} {'range':>17} {'peak GiB':>9} {'speed':>7} {'memory':>7}")
    for name in PATHS:
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
