"""Diffusion-DPO, MaPO and RankDPO fine-tuning of a Stable Diffusion UNet on human preferences.

Usage::

    python -m training.dpo --data EXPORT_DIR --pretrained MODEL_DIR --output OUT_DIR \\
        [--split train] [--method dpo|mapo|rankdpo] [--mode lora|full] [--max-train-steps 2000] \\
        [--train-batch-size 8] [--gradient-accumulation-steps 1] [--resolution 512] \\
        [--metrics-file OUT_DIR/metrics.jsonl] [--resume auto|never|CHECKPOINT_DIR] ...

    accelerate launch -m training.dpo --data ...        # several GPUs (DDP)
    python -m training.dpo --help                       # every option, default and source

``EXPORT_DIR`` is a Pickwise export (``data/{split}-*.parquet``) or any folder of parquet files
with the Pick-a-Pic columns ``jpg_0``, ``jpg_1``, ``label_0``, ``caption``; ties are dropped.
``--method rankdpo`` reads the ranked format instead (``images``, ``ranking``, ``prompt``: one
row per ranking of k images) and trains with RankDPO's DCG-weighted ranking loss
(training.trainer.losses); rankings where every image ties are dropped, and ``--train-batch-size``
counts lists of k images.
``MODEL_DIR`` is a diffusers Stable Diffusion pipeline folder.

Outputs in ``OUT_DIR``: ``pytorch_lora_weights.safetensors`` (LoRA, loadable with
``pipe.load_lora_weights(OUT_DIR)``) or ``unet/`` (full fine-tune), ``dpo_config.json`` (the
resolved config), ``checkpoints/step-N/`` with a ``latest`` pointer (a rerun of the same command
resumes from it), the feature cache ``cache/`` and ``metrics.jsonl``.

Metrics file: one JSON object per line, each with ``event`` and ``step``. ``event`` is ``start``,
``step`` (one per optimizer step: loss, implicit_acc, mse_w, mse_l, ref_mse_w, ref_mse_l,
reward_margin, lr, grad_norm, samples_per_s (pairs, or ranked lists, per second), gpu_mem_gb or
peak_rss_gb; for rankdpo, implicit_acc and reward_margin are over the labelled pairs of each
list and mse_w / mse_l are those of its best and worst image),
``warning``, ``checkpoint`` or ``done``. On resume, lines after the resumed step are dropped.
Bad input (no pairs, missing folders, impossible options) exits with status 2 and one
``error: ...`` line on stderr before any model is loaded.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import time
import types
import typing
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

import torch

from training.trainer.checkpoints import (
    capture_rng_state,
    load_training_state,
    resolve_resume,
    restore_rng_state,
    save_training_state,
    write_checkpoint,
)
from training.trainer.config import (
    EXIT_BAD_INPUT,
    RESUME_MUST_MATCH,
    DPOConfig,
    TrainerInputError,
)
from training.trainer.data import (
    CachedListDataset,
    CachedPairDataset,
    Encoding,
    FeatureCache,
    PairBatchSampler,
    build_feature_cache,
    build_list_feature_cache,
    count_labels,
    count_ranked_lists,
    ensure_caption_cached,
    find_parquet_files,
    module_fingerprint,
)
from training.trainer.monitoring import (
    MetricsWriter,
    MseTrend,
    finite_or_none,
    memory_metrics,
    nan_if_none,
)
from training.trainer.step import (
    Objective,
    add_lora,
    compute_list_loss,
    compute_pair_loss,
    frozen_reference,
    keep_lora_input_dtype,
    load_unet,
    lora_reference,
    prepare_unet_for_training,
    save_lora,
)

logger = logging.getLogger("training.trainer")


@dataclass
class TrainResult:
    """What a run leaves behind; the modules let in-process callers (tests) inspect them."""

    config: DPOConfig
    final_step: int
    pairs: int
    ties_dropped: int
    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module


def main(config: DPOConfig) -> TrainResult:
    """Load, freeze, adapter, data, prepare, loop, checkpoint, save."""
    from accelerate import Accelerator
    from accelerate.utils import gather_object, set_seed
    from diffusers import AutoencoderKL, DDPMScheduler
    from diffusers.optimization import get_constant_schedule_with_warmup
    from transformers import CLIPTextModel, CLIPTokenizer

    # --- Data first: bad input fails before any model is loaded.
    files = find_parquet_files(config.data, config.split)
    ranked = config.method == "rankdpo"
    counts = count_ranked_lists(files) if ranked else count_labels(files)
    if counts.pairs == 0 and ranked:
        raise TrainerInputError(
            f"no rankings to train on in {config.data} (split {config.split!r}): all "
            f"{counts.rows} rows rank every image equal, or there are no rows"
        )
    if counts.pairs == 0:
        raise TrainerInputError(
            f"no preference pairs in {config.data} (split {config.split!r}): all {counts.rows} "
            "rows are ties (label_0 == 0.5) or there are no rows; DPO needs label_0 of 1.0 or 0.0"
        )
    resume_from = resolve_resume(config.output, config.resume)

    accelerator = Accelerator(
        mixed_precision=config.mixed_precision or ("bf16" if torch.cuda.is_available() else "no"),
        gradient_accumulation_steps=config.gradient_accumulation_steps,
    )
    cuda = accelerator.device.type == "cuda"
    config = config.resolved(world_size=accelerator.num_processes, cuda=cuda)
    if accelerator.is_main_process and ranked:
        logger.info(
            "dropped %d all-tie rankings of %d rows in %d file(s); %d lists of %d images remain",
            counts.ties,
            counts.rows,
            len(files),
            counts.pairs,
            counts.k,
        )
    elif accelerator.is_main_process:
        logger.info(
            "dropped %d ties (label_0 == 0.5) of %d rows in %d file(s); %d pairs remain",
            counts.ties,
            counts.rows,
            len(files),
            counts.pairs,
        )
    set_seed(config.seed + accelerator.process_index)
    if cuda and config.allow_tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    weight_dtype = {"no": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[
        config.mixed_precision
    ]
    device = accelerator.device

    # --- Load and freeze. The VAE and text encoder only feed the cache, in fp32.
    tokenizer = CLIPTokenizer.from_pretrained(config.pretrained, subfolder="tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(config.pretrained, subfolder="text_encoder")
    vae = AutoencoderKL.from_pretrained(config.pretrained, subfolder="vae")
    unet = load_unet(config.pretrained)  # attention runs through PyTorch SDPA (AttnProcessor2_0)
    noise_scheduler = DDPMScheduler.from_pretrained(config.pretrained, subfolder="scheduler")
    for module in (text_encoder, vae, unet):
        module.requires_grad_(False)
        module.eval()
    downsample = 2 ** (len(vae.config.block_out_channels) - 1)
    downsample *= 2 ** (len(unet.config.down_block_types) - 1)
    if config.resolution % downsample:
        raise TrainerInputError(
            f"resolution {config.resolution} is not a multiple of {downsample}, which this "
            "model's VAE and UNet need"
        )

    # --- Feature cache: the main process encodes, the others then find every entry cached.
    cache = FeatureCache(
        root=config.cache_dir,
        vae_fingerprint=module_fingerprint(vae),
        text_fingerprint=module_fingerprint(
            text_encoder, json.dumps(tokenizer.get_vocab(), sort_keys=True)
        ),
        resolution=config.resolution,
    )
    vae.to(device)
    text_encoder.to(device)
    with accelerator.main_process_first():
        build_cache = build_list_feature_cache if ranked else build_feature_cache
        encoding = Encoding(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            resolution=config.resolution,
            random_flip=config.random_flip,
            device=device,
            dtype=torch.float32,
            batch_size=config.encode_batch_size,
        )
        pair_keys, cache_stats = build_cache(files=files, cache=cache, encoding=encoding)
        empty_key = ensure_caption_cached(
            caption="", cache=cache, text_encoder=text_encoder, tokenizer=tokenizer, device=device
        )
    scaling_factor = vae.config.scaling_factor
    vae.to("cpu")
    text_encoder.to("cpu")
    if cuda:
        torch.cuda.empty_cache()
        # gpu_mem_gb should report training, not the one-off encoding pass.
        torch.cuda.reset_peak_memory_stats()
    if accelerator.is_main_process:
        logger.info(
            "feature cache %s: encoded %d new images and %d new captions",
            config.cache_dir,
            cache_stats.images_encoded,
            cache_stats.captions_encoded,
        )

    # --- Adapter or full UNet, and the reference.
    unet.to(device)
    if config.mode == "lora":
        # The frozen base can live in the autocast dtype; only the adapters need fp32.
        if weight_dtype != torch.float32:
            unet.to(dtype=weight_dtype)
        add_lora(unet, rank=config.lora_rank, alpha=config.lora_alpha, targets=config.lora_targets)
        if weight_dtype != torch.float32:
            keep_lora_input_dtype(unet)  # autocast runs the adapters; no extra input copies
        reference = lora_reference(unet)
    else:
        reference = None  # MaPO is reference-free
        if config.method in ("dpo", "rankdpo"):
            # A frozen copy in the autocast dtype on the device (never offloaded: it runs
            # every step).
            reference_unet = (
                load_unet(config.reference_model) if config.reference_model else copy.deepcopy(unet)
            )
            reference_unet.requires_grad_(False).eval().to(device=device, dtype=weight_dtype)
            reference = frozen_reference(reference_unet)
        unet.requires_grad_(True)
    # Checkpointing and layout before compiling, so the compiled graph includes them.
    prepare_unet_for_training(
        unet,
        activation_checkpointing=config.activation_checkpointing,
        channels_last=config.channels_last,
        compile=config.torch_compile,
    )
    unet.train()
    trainable = {name: p for name, p in unet.named_parameters() if p.requires_grad}

    # --- Optimizer and schedule.
    if config.use_8bit_adam:
        import bitsandbytes

        optimizer_class = bitsandbytes.optim.AdamW8bit
    else:
        optimizer_class = torch.optim.AdamW
    optimizer = optimizer_class(
        list(trainable.values()),
        lr=config.learning_rate,
        betas=(config.adam_beta1, config.adam_beta2),
        weight_decay=config.adam_weight_decay,
        eps=config.adam_epsilon,
    )
    lr_scheduler = get_constant_schedule_with_warmup(
        optimizer, num_warmup_steps=config.lr_warmup_steps
    )
    prepared_unet, optimizer = accelerator.prepare(unet, optimizer)

    # --- Resume.
    step, micro_batch, trend_history, trend_quiet_until = 0, 0, [], 0
    if resume_from is not None:
        state, rng_states = load_training_state(
            resume_from,
            config=config.to_json(),
            must_match=RESUME_MUST_MATCH,
            trainable=trainable,
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            scaler=accelerator.scaler,
        )
        step, micro_batch = state["step"], state["micro_batch"]
        if state.get("pairs", len(pair_keys)) != len(pair_keys):
            logger.warning(
                "the checkpoint was trained on %d pairs, the data now has %d: the data order "
                "after the resume differs from the original run's",
                state["pairs"],
                len(pair_keys),
            )
        trend_history = state.get("mse_history", [])
        trend_quiet_until = state.get("mse_quiet_until", 0)
        if len(rng_states) == accelerator.num_processes:
            restore_rng_state(rng_states[accelerator.process_index])
        else:
            logger.warning("resuming with another process count: random streams are reseeded")
            set_seed(config.seed + accelerator.process_index + step)
        if accelerator.is_main_process:
            logger.info("resumed from %s at step %d", resume_from, step)

    # --- Data loader over cached features, starting at the saved position.
    dataset_class = CachedListDataset if ranked else CachedPairDataset
    dataset = dataset_class(
        pairs=pair_keys,
        cache=cache,
        seed=config.seed,
        random_flip=config.random_flip,
        prompt_dropout=config.prompt_dropout,
        empty_caption_key=empty_key,
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=PairBatchSampler(
            batch_size=config.train_batch_size,
            rank=accelerator.process_index,
            world_size=accelerator.num_processes,
            start=micro_batch,
        ),
        num_workers=config.dataloader_num_workers,
        pin_memory=cuda,
        # Its own generator: iter() draws a worker seed, which must not shift the global stream
        # that noise and timesteps come from (a resumed run would drift otherwise).
        generator=torch.Generator().manual_seed(config.seed),
    )
    metrics = MetricsWriter(
        config.metrics_file,
        enabled=accelerator.is_main_process,
        resume_step=step if resume_from is not None else None,
    )
    pairs_per_step = (
        config.train_batch_size * config.gradient_accumulation_steps * accelerator.num_processes
    )
    metrics.write(
        "start",
        step,
        max_train_steps=config.max_train_steps,
        rows=counts.rows,
        ties_dropped=counts.ties,
        pairs=counts.pairs,
        world_size=accelerator.num_processes,
        effective_batch=pairs_per_step,
        **({"list_length": counts.k} if ranked else {}),
        resumed_from=str(resume_from) if resume_from else None,
    )

    def save_state(folder: Path, rng_states: list) -> None:
        trainer_state = {
            "step": step,
            "micro_batch": micro_batch,
            "world_size": accelerator.num_processes,
            "pairs": len(pair_keys),
            "mse_history": list(trend.history),
            "mse_quiet_until": trend.quiet_until,
        }
        save_training_state(
            folder,
            trainable=trainable,
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            scaler=accelerator.scaler,
            rng_states=rng_states,
            trainer_state=trainer_state,
            config=config.to_json(),
        )
        if config.mode == "lora":
            save_lora(unet, folder)  # each checkpoint also loads with pipe.load_lora_weights

    # --- Loop.
    objective = Objective(
        method=config.method,
        beta=config.beta,
        mapo_beta=config.mapo_beta,
        mapo_temperature=config.mapo_temperature,
        mapo_alpha=config.mapo_alpha,
    )
    compute_loss = compute_list_loss if ranked else compute_pair_loss
    trend = MseTrend(config.mse_warning_window, trend_history)
    trend.quiet_until = trend_quiet_until
    names = ("loss", "implicit_acc", "mse_w", "mse_l", "ref_mse_w", "ref_mse_l", "reward_margin")
    sums = torch.zeros(len(names), device=device)
    batches = iter(loader)
    started = time.perf_counter()
    while step < config.max_train_steps:
        batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
        with accelerator.accumulate(prepared_unet):
            with accelerator.autocast():
                out = compute_loss(
                    unet=prepared_unet,
                    batch=batch,
                    noise_scheduler=noise_scheduler,
                    scaling_factor=scaling_factor,
                    objective=objective,
                    reference=reference,
                )
            accelerator.backward(out.loss)
            grad_norm = None
            if accelerator.sync_gradients:
                grad_norm = accelerator.clip_grad_norm_(trainable.values(), config.max_grad_norm)
                lr = lr_scheduler.get_last_lr()[0]
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
        micro_batch += 1
        nan = torch.tensor(float("nan"), device=device)
        sums += torch.stack(
            [
                out.loss.detach(),
                out.implicit_acc,
                out.mse_w,
                out.mse_l,
                nan if out.ref_mse_w is None else out.ref_mse_w,
                nan if out.ref_mse_l is None else out.ref_mse_l,
                out.reward_margin,
            ]
        ).float()
        if not accelerator.sync_gradients:
            continue
        step += 1
        averaged = accelerator.reduce(sums / config.gradient_accumulation_steps, "mean")
        sums.zero_()
        values = {n: finite_or_none(v) for n, v in zip(names, averaged.tolist(), strict=True)}
        now = time.perf_counter()
        values |= {
            "lr": lr,
            "grad_norm": finite_or_none(float(grad_norm)),
            "samples_per_s": pairs_per_step / (now - started),
            **memory_metrics(cuda),
        }
        started = now
        metrics.write("step", step, max_train_steps=config.max_train_steps, **values)
        if accelerator.is_main_process:
            logger.info(
                "step %d/%d loss %.4f acc %.3f margin %.3g lr %.3g",
                step,
                config.max_train_steps,
                nan_if_none(values["loss"]),
                nan_if_none(values["implicit_acc"]),
                nan_if_none(values["reward_margin"]),
                lr,
            )
        warning = None
        if values["mse_w"] is not None and values["mse_l"] is not None:
            has_ref = values["ref_mse_w"] is not None and values["ref_mse_l"] is not None
            warning = trend.add(
                step,
                values["mse_w"] - (values["ref_mse_w"] if has_ref else 0.0),
                values["mse_l"] - (values["ref_mse_l"] if has_ref else 0.0),
            )
        if warning and accelerator.is_main_process:
            logger.warning("step %d: %s", step, warning)
            metrics.write("warning", step, message=warning)
        if step % config.checkpointing_steps == 0 or step == config.max_train_steps:
            # Every rank's RNG goes into the checkpoint; gathering is collective.
            rng_states = gather_object([capture_rng_state()])
            if accelerator.is_main_process:
                folder = write_checkpoint(
                    output_dir=config.output,
                    step=step,
                    write=lambda tmp, states=rng_states: save_state(tmp, states),
                    total_limit=config.checkpoints_total_limit,
                )
                metrics.write("checkpoint", step, path=str(folder))
            accelerator.wait_for_everyone()
            started = time.perf_counter()  # samples_per_s measures training, not saving

    # --- Final weights.
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if config.mode == "lora":
            save_lora(unet, config.output)
        else:
            unet.save_pretrained(config.output / "unet", safe_serialization=True)
        (config.output / "dpo_config.json").write_text(
            json.dumps(config.to_json(), indent=2), encoding="utf-8"
        )
        metrics.write("done", step, output=str(config.output))
        logger.info("finished at step %d; weights in %s", step, config.output)
    accelerator.end_training()
    return TrainResult(
        config=config,
        final_step=step,
        pairs=counts.pairs,
        ties_dropped=counts.ties,
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
    )


def build_parser() -> argparse.ArgumentParser:
    """One option per DPOConfig field, with its help, default and choices."""
    parser = argparse.ArgumentParser(
        prog="python -m training.dpo",
        description=__doc__.split("\n", 1)[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    hints = typing.get_type_hints(DPOConfig)
    for spec in fields(DPOConfig):
        kind = hints[spec.name]
        if isinstance(kind, types.UnionType):
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        kwargs: dict = {"dest": spec.name, "help": spec.metadata["help"]}
        if spec.default is MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = spec.default
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is tuple:
            kwargs |= {"nargs": "+", "type": str}
        else:
            kwargs["type"] = kind
        if spec.metadata.get("choices"):
            kwargs["choices"] = spec.metadata["choices"]
        parser.add_argument("--" + spec.name.replace("_", "-"), **kwargs)
    return parser


def cli(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = build_parser().parse_args(argv)
    try:
        config = DPOConfig(**vars(args))
        main(config)
    except TrainerInputError as error:  # bad data, folders, options or checkpoint (not faults)
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(cli())
