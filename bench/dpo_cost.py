"""DPO step cost counted without a GPU: FLOPs and activation bytes of each bench/gpu_dpo.py path.

    python bench/dpo_cost.py            # SD1.5 shapes, 512 px, 8 pairs, on meta tensors (~1 min)
    python bench/dpo_cost.py --tiny     # tiny models (smoke test)

Every path of ``bench/gpu_dpo.py`` (ours with each activation-checkpointing mode,
diffusers-style, second-UNet) is built from the same code at the real SD1.5 shapes on the
``meta`` device: tensors with shapes and dtypes but no memory and no arithmetic, so a full
training step runs in seconds on a laptop. For one step (forward, reference forward, backward)
it counts:

- FLOPs with ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions, attention;
  element-wise ops count zero). Recomputation in backward is included: full checkpointing
  reruns each block's forward, selective checkpointing reruns only the ops it did not keep.
- saved for backward: bytes autograd's own saved-tensor hooks see
  (``torch.autograd.graph.saved_tensors_hooks``), one count per storage, weights left out. Checkpointing keeps its
  tensors behind its own hooks, so this column shows only what is held outside checkpointed
  blocks; for the uncheckpointed paths it is the whole activation memory.
- held after forward: bytes of every tensor made during the forward that is still alive when
  backward starts (one count per storage, after garbage collection): what autograd and
  checkpointing hold, whatever the mechanism. This is the activation memory to compare.
- step peak: the largest sum of live tensors made during the step, sampled every few ops over
  forward and backward (includes the no-grad VAE encode and reference forward, the recompute
  of checkpointed blocks, gradients).
- weights (resident modules as built), and the trained LoRA weights, their gradients and AdamW's
  two moments, all in fp32 as the trainer keeps them.

Set-up details that matter: the meta device has no autocast, so each path is built in its
compute dtype (ours bf16, the baselines fp16), the LoRA adapters included; attention runs
through the fused kernel a GPU would pick (``F.scaled_dot_product_attention`` is routed to the
flash-attention op, or the memory-efficient op for head dims above 256) instead of the math
fallback meta would otherwise take. Under GPU autocast, peft copies each LoRA input to fp32 and
autocast back to half: ours switches that off (``keep_lora_input_dtype``); the baselines keep it
on a GPU, so their counts here are slightly low, which favours the baselines.

What this predicts and what not: the FLOP ratio predicts the speed ratio only as far as the
kernels run equally efficiently. Element-wise work (norms, activations, casts), launch overhead
and the Python cost of selective checkpointing in eager mode are not FLOPs; compiled kernels
fuse them. Predicted peak = weights + optimizer state + step peak; the GPU adds allocator
fragmentation, cuBLAS/cuDNN workspaces and the CUDA context. These are counts, not timings.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gpu_dpo import Setup, ours_parts, straightforward_parts  # noqa: E402

GIB = 2**30
SAMPLE_EVERY = 8  # ops between two samples of the live bytes


class LiveBytes(TorchDispatchMode):
    """Tracks the storages of every op's outputs; sums those still alive on request."""

    def __init__(self):
        super().__init__()
        self.storages: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak = 0
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in _tensors(out):
            storage = tensor.untyped_storage()
            ref = StorageWeakRef(storage)
            known = self.storages.get(ref.cdata)
            if known is None or known[0].expired():
                self.storages[ref.cdata] = (ref, storage.nbytes())
        self.ops += 1
        if self.ops % SAMPLE_EVERY == 0:
            self.peak = max(self.peak, self.live())
        return out

    def live(self) -> int:
        dead = [key for key, (ref, _) in self.storages.items() if ref.expired()]
        for key in dead:
            del self.storages[key]
        return sum(size for _, size in self.storages.values())


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _tensors(item)


class SavedBytes:
    """Bytes autograd saves for backward through the saved-tensor hooks, once per storage."""

    def __init__(self, skip: set[int]):
        self.storages: dict[int, int] = {}
        self.skip = skip  # the weights' storages: resident anyway, counted as weights

    def pack(self, tensor):
        storage = tensor.untyped_storage()
        key = StorageWeakRef(storage).cdata
        if key not in self.skip:
            self.storages[key] = storage.nbytes()
        return tensor

    @property
    def total(self) -> int:
        return sum(self.storages.values())


@contextlib.contextmanager
def fused_attention():
    """Route SDPA to the fused kernels a GPU would run (meta would take the math path)."""
    original = F.scaled_dot_product_attention

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, **kwargs):
        if attn_mask is not None or kwargs.get("enable_gqa"):
            return original(query, key, value, attn_mask, dropout_p, is_causal, **kwargs)
        scale = kwargs.get("scale")
        if query.shape[-1] <= 256:
            return torch.ops.aten._scaled_dot_product_flash_attention(
                query, key, value, dropout_p, is_causal, False, scale=scale
            )[0]
        return torch.ops.aten._scaled_dot_product_efficient_attention(
            query, key, value, None, True, dropout_p, is_causal, scale=scale
        )[0]

    F.scaled_dot_product_attention = sdpa
    try:
        yield
    finally:
        F.scaled_dot_product_attention = original


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def count(setup: Setup, build) -> dict:
    gc.collect()
    torch.manual_seed(0)
    parts = build(setup)
    trained = parts.params
    weights = sum(
        _bytes(p for p in module.parameters() if not p.requires_grad) + _bytes(module.buffers())
        for module in parts.modules.values()
    )
    trained_fp32 = sum(p.numel() for p in trained) * 4
    weight_storages = {
        StorageWeakRef(p.untyped_storage()).cdata
        for module in parts.modules.values()
        for p in [*module.parameters(), *module.buffers()]
    }
    saved, live = SavedBytes(weight_storages), LiveBytes()
    with fused_attention(), FlopCounterMode(display=False) as flops, live:
        with torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda tensor: tensor):
            loss = parts.forward()
        gc.collect()
        held = live.live()
        live.peak = max(live.peak, held)
        parts.backward(loss)
        del loss
        gc.collect()
    return {
        "flops": flops.get_total_flops(),
        "saved": saved.total,
        "held": held,
        "peak": live.peak,
        "weights": weights,
        # fp32 master weights, their gradients and AdamW's two moments
        "optimizer": 4 * trained_fp32,
        "inputs": _bytes(parts.inputs.values()),
        "trained": sum(p.numel() for p in trained),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models (smoke test)")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=512)
    args = parser.parse_args(argv)
    # The options gpu_dpo.py's Setup reads; checkpointing is chosen per row below.
    args.baseline_checkpointing = "none"
    args.ours_checkpointing, args.ours_channels_last, args.ours_compile = "none", False, False
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import diffusers
    import peft

    diffusers.utils.logging.set_verbosity_error()
    setup = Setup(args, device="meta")
    rows = {
        "ours[none]": lambda s: ours_parts(s, activation_checkpointing="none"),
        "ours[selective]": lambda s: ours_parts(s, activation_checkpointing="selective"),
        "ours[full]": lambda s: ours_parts(s, activation_checkpointing="full"),
        "diffusers-style": lambda s: straightforward_parts(s, second_unet=False),
        "second-UNet": lambda s: straightforward_parts(s, second_unet=True),
    }
    print("DPO step cost, counted on meta tensors (no GPU; counts and predictions, not timings)")
    print(
        f"  machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"torch {torch.__version__}, diffusers {diffusers.__version__}, peft {peft.__version__}"
    )
    print(
        f"  models: {'tiny random' if setup.tiny else 'SD1.5 architecture'}; {setup.resolution} "
        f"px ({setup.latent}x{setup.latent} latents), {setup.pairs} pairs ({2 * setup.pairs} "
        "images) per step, LoRA rank 8 on to_q/to_k/to_v/to_out.0; ours bf16, baselines fp16; "
        "attention as flash-attention; one step = forward + reference forward + backward"
    )
    results = {}
    for name, build in rows.items():
        started = time.perf_counter()
        results[name] = count(setup, build)
        print(f"  counted {name} in {time.perf_counter() - started:.1f} s")
    base = results["diffusers-style"]
    base_total = base["weights"] + base["optimizer"] + base["inputs"] + base["peak"]
    print()
    header = (
        f"{'path':<16}{'TFLOP':>8}{'x base':>8}{'saved GiB':>11}{'held GiB':>10}"
        f"{'peak GiB':>10}{'weights':>9}{'optim':>7}{'pred. GiB':>11}{'x base':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        total = r["weights"] + r["optimizer"] + r["inputs"] + r["peak"]
        print(
            f"{name:<16}{r['flops'] / 1e12:>8.2f}{r['flops'] / base['flops']:>7.2f}x"
            f"{r['saved'] / GIB:>11.2f}{r['held'] / GIB:>10.2f}{r['peak'] / GIB:>10.2f}"
            f"{r['weights'] / GIB:>9.2f}{r['optimizer'] / GIB:>7.3f}{total / GIB:>11.2f}"
            f"{total / base_total:>7.2f}x"
        )
    print()
    print(
        "  TFLOP: per step, forward + backward + recompute; saved: autograd's saved-tensor hooks "
        "(outside checkpointed blocks); held: live after forward; peak: sampled over the step; "
        "weights: resident modules; optim: fp32 LoRA weights + grads + AdamW moments "
        f"({results['ours[none]']['trained'] / 1e6:.2f} M trained parameters); pred.: weights + "
        "optim + inputs + peak"
    )
    ours = results["ours[selective]"]
    ours_total = ours["weights"] + ours["optimizer"] + ours["inputs"] + ours["peak"]
    none = results["ours[none]"]
    print(
        f"summary: ours[selective] needs {ours['flops'] / base['flops']:.2f}x the FLOPs of the "
        f"diffusers-style step (predicted speed-up {base['flops'] / ours['flops']:.2f}x if "
        f"kernels are equally efficient) and holds {ours['held'] / none['held']:.2f}x the "
        f"activations of ours[none]; predicted peak {ours_total / base_total:.2f}x the "
        "diffusers-style step (target <= 0.6x) [counts on meta tensors, not GPU timings]"
    )


if __name__ == "__main__":
    main()
