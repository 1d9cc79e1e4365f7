"""Every option of the standalone trainer, with its default, meaning and constraints.

The single source for ``python -m training.dpo`` (``DPOConfig`` and its command line) and for
the web side (``training.options``, the fine-tune form, the API's validation), which derives
its options from the fields here. This module imports neither torch nor Django, so the web
process may import it; the checks that need the worker (fp16 needs CUDA, bitsandbytes
installed) import what they need when a config is validated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

METHODS = ("dpo", "mapo", "rankdpo")
MODES = ("lora", "full")
MIXED_PRECISIONS = ("no", "bf16", "fp16")
ACTIVATION_CHECKPOINTING = ("none", "selective", "full")
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
# Loss defaults: DiffusionDPO's beta for SD1.5 and SDXL, MaPO's from mapo-t2i/mapo.
DEFAULT_BETA = 5000.0
MAPO_ALPHA = 0.5
MAPO_TEMPERATURE = 1000.0
MAPO_BETA = 0.1
# Fields that shape the trained weights: a resume with other values would load the wrong thing.
RESUME_MUST_MATCH = ("method", "mode", "lora_rank", "lora_alpha", "lora_targets", "resolution")
EXIT_BAD_INPUT = 2

RESOLUTION_PROBLEM = "resolution must be a positive multiple of 8, not {value}"
PROMPT_DROPOUT_PROBLEM = "prompt_dropout must be in [0, 1)"


class TrainerInputError(ValueError):
    """The trainer's input cannot be used (data, folders, options, checkpoint to resume from);
    the message says why and what was found. The command line reports only these as refused
    input (exit status 2); any other error is a fault and keeps its traceback."""


def _doc(
    text: str,
    *,
    choices: tuple[str, ...] | None = None,
    positive: bool = False,
    non_negative: bool = False,
    job: bool = True,
) -> dict:
    """A field's help and constraints. positive / non_negative hold when the value is set (None
    means the trainer resolves it); job: a training job may set it (False for the paths,
    split, method, mode and the like, which the job's own fields or the runner decide)."""
    return {
        "help": text,
        "choices": choices,
        "positive": positive,
        "non_negative": non_negative,
        "job": job,
    }


@dataclass
class DPOConfig:
    """Everything a run depends on; the resolved copy is stored in every checkpoint.

    Each field's metadata ``help`` gives its meaning and where its default comes from;
    ``python -m training.dpo --help`` prints them. Fields left at None are resolved by
    ``resolved()`` once the device and the number of processes are known.
    """

    data: Path = field(
        metadata=_doc(
            "Pickwise export folder, or a folder of Pick-a-Pic-format parquet files.", job=False
        )
    )
    pretrained: Path = field(
        metadata=_doc(
            "Stable Diffusion pipeline folder (diffusers layout, model_index.json).", job=False
        )
    )
    output: Path = field(
        metadata=_doc("Folder for weights, checkpoints, cache and metrics.", job=False)
    )
    split: str = field(
        default="train",
        metadata=_doc("Export split to train on (data/{split}-*.parquet).", job=False),
    )
    method: str = field(
        default="dpo",
        metadata=_doc(
            "Objective: dpo (Diffusion-DPO, Wallace et al. 2023), mapo (reference-free, "
            "Hong et al. 2024) or rankdpo (DCG-weighted ranking loss over ranked lists, "
            "Karthik et al. 2024; reads the ranked export format).",
            choices=METHODS,
            job=False,
        ),
    )
    mode: str = field(
        default="lora",
        metadata=_doc(
            "lora: train peft LoRA adapters on the UNet; full: train every UNet weight.",
            choices=MODES,
            job=False,
        ),
    )
    beta: float = field(
        default=DEFAULT_BETA,
        metadata=_doc(
            "DPO and RankDPO beta; the loss uses beta/2 (official DiffusionDPO convention, "
            "5000 for SD1.5 and SDXL). Not comparable with language-model DPO betas (~0.1).",
            positive=True,
        ),
    )
    mapo_beta: float = field(
        default=MAPO_BETA, metadata=_doc("MaPO weight of the margin term (mapo-t2i/mapo: 0.1).")
    )
    mapo_temperature: float = field(
        default=MAPO_TEMPERATURE,
        metadata=_doc("MaPO scale T of the score difference (mapo-t2i/mapo: 1000).", positive=True),
    )
    mapo_alpha: float = field(
        default=MAPO_ALPHA,
        metadata=_doc("MaPO a in s(m) = a*m/(exp(a*m)-1) (mapo-t2i/mapo: 0.5).", positive=True),
    )
    reference_model: Path | None = field(
        default=None,
        metadata=_doc(
            "DPO with mode full only: a UNet folder (or pipeline folder) to use as the frozen "
            "reference instead of the base UNet. LoRA's reference is always the base UNet."
        ),
    )
    lora_rank: int | None = field(
        default=None,
        metadata=_doc("LoRA rank; default 8 (diffusers DPO example). LoRA only.", positive=True),
    )
    lora_alpha: int | None = field(
        default=None,
        metadata=_doc("LoRA alpha; default = rank (diffusers DPO example).", positive=True),
    )
    lora_targets: tuple[str, ...] = field(
        default=LORA_TARGETS,
        metadata=_doc("UNet modules that get LoRA adapters (diffusers DPO example).", job=False),
    )
    learning_rate: float | None = field(
        default=None,
        metadata=_doc(
            "Peak learning rate; default LoRA 1e-5, full 1e-8 x effective batch in pairs "
            "(official launcher: 2.048e-5 at 2048 pairs).",
            positive=True,
        ),
    )
    lr_warmup_steps: int | None = field(
        default=None,
        metadata=_doc(
            "Linear warmup steps, then constant; default LoRA 0, full 500 (official launcher).",
            non_negative=True,
        ),
    )
    train_batch_size: int = field(
        default=8,
        metadata=_doc(
            "Pairs per process per micro-batch (each pair is 2 images); with rankdpo, ranked "
            "lists (each k images).",
            positive=True,
        ),
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata=_doc("Micro-batches per optimizer step.", positive=True)
    )
    max_train_steps: int = field(
        default=2000,
        metadata=_doc("Optimizer steps in total (official SD1.5 run: 2000).", positive=True),
    )
    resolution: int = field(
        default=512, metadata=_doc("Training resolution in pixels, a multiple of 8 (SD1.5: 512).")
    )
    random_flip: bool = field(
        default=True,
        metadata=_doc("Flip winner and loser together at random (official code flips)."),
    )
    prompt_dropout: float | None = field(
        default=None,
        metadata=_doc(
            "Chance of training a pair on the empty prompt; default LoRA 0, full 0.2 "
            "(official launcher)."
        ),
    )
    mixed_precision: str | None = field(
        default=None,
        metadata=_doc(
            "Autocast dtype; default bf16 on CUDA, no on CPU. fp16 uses a gradient scaler "
            "and needs CUDA.",
            choices=MIXED_PRECISIONS,
        ),
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata=_doc(
            "Alias of --activation-checkpointing full (diffusers' name for it); contradicts "
            "none and selective."
        ),
    )
    activation_checkpointing: str | None = field(
        default=None,
        metadata=_doc(
            "Activation memory of the UNet's backward. none: keep every activation (fastest, "
            "most memory); selective: checkpoint each resnet and transformer block but keep the "
            "outputs of convolutions, matmuls and attention, recomputing only norms, "
            "activations and element-wise ops (torch selective activation checkpointing); "
            "full: keep only each block's inputs and redo the block in backward (diffusers' "
            "gradient checkpointing, least memory, about 30% slower). Default: full with "
            "--gradient-checkpointing, else none. Loss and gradients are the same in all three "
            "up to rounding.",
            choices=ACTIVATION_CHECKPOINTING,
        ),
    )
    channels_last: bool = field(
        default=False,
        metadata=_doc(
            "UNet weights and input in channels-last (NHWC) layout: faster convolutions on "
            "tensor-core GPUs, no gain on the CPU."
        ),
    )
    torch_compile: bool = field(
        default=False,
        metadata=_doc(
            "torch.compile the UNet (inductor). Off by default: compiling costs minutes on "
            "the CPU and a minute or two on a GPU, which pays back in runs of hundreds of steps "
            "on a GPU (fused norms and activations, also when recomputed)."
        ),
    )
    use_8bit_adam: bool = field(
        default=False, metadata=_doc("bitsandbytes AdamW8bit instead of torch AdamW.")
    )
    adam_beta1: float = field(default=0.9, metadata=_doc("AdamW beta1 (diffusers default)."))
    adam_beta2: float = field(default=0.999, metadata=_doc("AdamW beta2 (diffusers default)."))
    adam_weight_decay: float = field(
        default=1e-2, metadata=_doc("AdamW weight decay (diffusers DPO example).")
    )
    adam_epsilon: float = field(default=1e-8, metadata=_doc("AdamW epsilon (diffusers default)."))
    max_grad_norm: float = field(
        default=1.0, metadata=_doc("Gradient clipping norm (diffusers DPO example).", positive=True)
    )
    allow_tf32: bool = field(default=True, metadata=_doc("TF32 matmuls on Ampere or newer GPUs."))
    seed: int = field(
        default=0,
        metadata=_doc(
            "Seed for the data order, augmentation, noise and LoRA init.", non_negative=True
        ),
    )
    checkpointing_steps: int = field(
        default=500,
        metadata=_doc("Write a resumable checkpoint every N optimizer steps.", positive=True),
    )
    checkpoints_total_limit: int | None = field(
        default=3,
        metadata=_doc("Keep at most this many checkpoints (None: keep all).", positive=True),
    )
    resume: str = field(
        default="auto",
        metadata=_doc(
            "auto: continue from OUT_DIR/checkpoints/latest when present; never: start over; "
            "or a checkpoint folder.",
            job=False,
        ),
    )
    cache_dir: Path | None = field(
        default=None,
        metadata=_doc(
            "Latent and text-embedding cache, shareable across jobs; default OUT_DIR/cache.",
            job=False,
        ),
    )
    metrics_file: Path | None = field(
        default=None, metadata=_doc("JSON-lines metrics; default OUT_DIR/metrics.jsonl.", job=False)
    )
    encode_batch_size: int = field(
        default=8,
        metadata=_doc(
            "Images or captions per VAE / text-encoder call when caching.", positive=True
        ),
    )
    dataloader_num_workers: int = field(
        default=2,
        metadata=_doc(
            "Worker processes reading cached features (0: in process).", non_negative=True
        ),
    )
    mse_warning_window: int = field(
        default=50,
        metadata=_doc(
            "Warn when winner and loser MSE (relative to the reference for DPO) both grew "
            "from one window of this many steps to the next.",
            positive=True,
        ),
    )

    def __post_init__(self) -> None:
        for name in ("data", "pretrained", "output", "reference_model", "cache_dir"):
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, Path(value))
        if isinstance(self.metrics_file, str):
            self.metrics_file = Path(self.metrics_file)
        self.lora_targets = tuple(self.lora_targets)
        self.validate()

    def validate(self) -> None:
        """Raise TrainerInputError on any value or combination that cannot work."""
        values = {spec.name: getattr(self, spec.name) for spec in fields(self)}
        problems = [
            problem
            for name, value in values.items()
            if (problem := field_problem(name, value)) is not None
        ]
        problems += combination_problems(values, spell=cli_flag)
        if not Path(self.pretrained).is_dir():
            problems.append(f"pretrained model folder not found: {self.pretrained}")
        elif not (Path(self.pretrained) / "model_index.json").exists():
            problems.append(
                f"{self.pretrained} is not a diffusers pipeline folder (no model_index.json)"
            )
        if not Path(self.data).is_dir():
            problems.append(f"data folder not found: {self.data}")
        if self.reference_model is not None and not Path(self.reference_model).is_dir():
            problems.append(f"reference model folder not found: {self.reference_model}")
        if not self.lora_targets:
            problems.append("lora_targets must name at least one module")
        problems += _worker_problems(self)
        if problems:
            raise TrainerInputError("invalid training config: " + "; ".join(problems))

    def resolved(self, *, world_size: int, cuda: bool) -> DPOConfig:
        """Fill the mode- and device-dependent defaults (documented on each field)."""
        lora = self.mode == "lora"
        rank = (self.lora_rank or 8) if lora else None
        effective_batch = self.train_batch_size * self.gradient_accumulation_steps * world_size
        return replace(
            self,
            lora_rank=rank,
            lora_alpha=(self.lora_alpha or rank) if lora else None,
            learning_rate=self.learning_rate or (1e-5 if lora else 1e-8 * effective_batch),
            lr_warmup_steps=(
                self.lr_warmup_steps if self.lr_warmup_steps is not None else (0 if lora else 500)
            ),
            prompt_dropout=(
                self.prompt_dropout if self.prompt_dropout is not None else (0.0 if lora else 0.2)
            ),
            mixed_precision=self.mixed_precision or ("bf16" if cuda else "no"),
            activation_checkpointing=self.activation_checkpointing
            or ("full" if self.gradient_checkpointing else "none"),
            cache_dir=self.cache_dir or self.output / "cache",
            metrics_file=self.metrics_file or self.output / "metrics.jsonl",
        )

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self), default=str))


FIELDS = {spec.name: spec for spec in fields(DPOConfig)}
# The options a training job may set, and their defaults (None: resolved by the trainer).
JOB_OPTIONS = tuple(name for name, spec in FIELDS.items() if spec.metadata["job"])


def default_of(name: str) -> Any:
    return FIELDS[name].default


def cli_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def field_problem(name: str, value: Any) -> str | None:
    """What is wrong with one option's value on its own (None: nothing, or not set)."""
    meta = FIELDS[name].metadata
    if value is None:
        return None
    if meta["choices"] and value not in meta["choices"]:
        return f"{name} must be one of {meta['choices']}, not {value!r}"
    if meta["positive"] and not value > 0:
        return f"{name} must be > 0"
    if meta["non_negative"] and value < 0:
        return f"{name} must be >= 0"
    return None


def combination_problems(
    values: Mapping[str, Any], *, spell: Callable[[str], str] = str
) -> list[str]:
    """What cannot work among the options together (and the ranges a sign cannot state).

    values: method, mode and any options (missing or None: the default); spell: how an
    option is named in the messages (the command line's flags, or the options' own names).
    """
    problems = []
    method, mode = values["method"], values["mode"]
    resolution = values.get("resolution")
    resolution = default_of("resolution") if resolution is None else resolution
    if resolution <= 0 or resolution % 8:
        problems.append(RESOLUTION_PROBLEM.format(value=resolution))
    dropout = values.get("prompt_dropout")
    if dropout is not None and not 0 <= dropout < 1:
        problems.append(PROMPT_DROPOUT_PROBLEM)
    if values.get("reference_model") is not None:
        if method == "mapo":
            problems.append(f"MaPO is reference-free: drop {spell('reference_model')}")
        if mode == "lora":
            problems.append(
                f"{spell('reference_model')} needs {spell('mode')} full (LoRA's reference is "
                "the base UNet with the adapters disabled)"
            )
    if mode == "full" and (
        values.get("lora_rank") is not None or values.get("lora_alpha") is not None
    ):
        problems.append(
            f"{spell('lora_rank')} and {spell('lora_alpha')} apply to {spell('mode')} lora, "
            "not full"
        )
    checkpointing = values.get("activation_checkpointing")
    if (
        values.get("gradient_checkpointing")
        and checkpointing in ACTIVATION_CHECKPOINTING
        and checkpointing != "full"
    ):
        problems.append(
            f"{spell('gradient_checkpointing')} means {spell('activation_checkpointing')} "
            f"full, not {checkpointing}: drop one of them"
        )
    return problems


def _worker_problems(config: DPOConfig) -> list[str]:
    """Checks that depend on the machine the trainer runs on (imported only here)."""
    problems = []
    if config.mixed_precision == "fp16":
        import torch

        if not torch.cuda.is_available():
            problems.append("fp16 mixed precision needs a CUDA GPU; use no or bf16 on CPU")
    if config.use_8bit_adam:
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            problems.append("--use-8bit-adam needs the bitsandbytes package")
    return problems
