"""Atomic, resumable training checkpoints: ``OUT_DIR/checkpoints/step-N/`` plus a ``latest`` file.

A checkpoint is written into a hidden temporary folder next to its final place and renamed
into place only once complete, then ``latest`` is replaced atomically; a crash at any point
leaves either the previous checkpoint or the new one, never a half-written one that ``latest``
names. Old checkpoints beyond the limit are removed afterwards (never the one ``latest`` names).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from training.trainer.config import TrainerInputError

CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest"
STEP_DIR_PATTERN = re.compile(r"^step-(\d+)$")


class CheckpointError(TrainerInputError):
    """A checkpoint named for resuming is missing, unreadable or of another run."""


def checkpoints_dir(output_dir: Path) -> Path:
    return Path(output_dir) / CHECKPOINTS_DIR


def list_checkpoints(output_dir: Path) -> list[tuple[int, Path]]:
    """Finished checkpoints as (step, folder), oldest first."""
    root = checkpoints_dir(output_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = STEP_DIR_PATTERN.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found)


def write_checkpoint(
    *,
    output_dir: Path,
    step: int,
    write: Callable[[Path], None],
    total_limit: int | None,
) -> Path:
    """Call ``write(folder)`` on a temporary folder, then publish it as step-N and latest."""
    root = checkpoints_dir(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step}"
    tmp = root / f".tmp-step-{step}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        write(tmp)
        if final.exists():
            # A resumed run can reach a step it already saved: move the old one aside first so
            # the rename below stays a single atomic operation.
            stale = root / f".old-step-{step}-{uuid.uuid4().hex[:8]}"
            final.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _write_text_atomically(root / LATEST_FILE, final.name + "\n")
    _prune(output_dir, keep=final, total_limit=total_limit)
    return final


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The folder ``latest`` names, or None when no checkpoint was ever written."""
    pointer = checkpoints_dir(output_dir) / LATEST_FILE
    if not pointer.exists():
        return None
    folder = checkpoints_dir(output_dir) / pointer.read_text(encoding="utf-8").strip()
    if not folder.is_dir():
        raise CheckpointError(f"{pointer} names {folder.name}, which does not exist")
    return folder


def resolve_resume(output_dir: Path, resume: str) -> Path | None:
    """'auto': the latest checkpoint if any; 'never': none; otherwise a checkpoint folder."""
    if resume == "never":
        return None
    if resume == "auto":
        return latest_checkpoint(output_dir)
    folder = Path(resume)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint to resume from not found: {folder}")
    return folder


def capture_rng_state() -> dict:
    """Every random generator the training loop draws from, for an exact resume."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_text_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _prune(output_dir: Path, *, keep: Path, total_limit: int | None) -> None:
    if total_limit is None:
        return
    existing = [folder for _, folder in list_checkpoints(output_dir) if folder != keep]
    excess = len(existing) + 1 - total_limit
    for folder in existing[: max(excess, 0)]:
        shutil.rmtree(folder, ignore_errors=True)


def save_training_state(
    folder: Path,
    *,
    trainable: dict[str, torch.nn.Parameter],
    optimizer,
    lr_scheduler,
    scaler,
    rng_states: list[dict],
    trainer_state: dict,
    config: dict,
) -> None:
    """Everything a resume needs: weights being trained, optimizer, schedule, RNG, position."""
    from safetensors.torch import save_file

    weights = {name: p.detach().float().cpu().contiguous() for name, p in trainable.items()}
    save_file(weights, folder / "trainable_params.safetensors")
    torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    torch.save(lr_scheduler.state_dict(), folder / "scheduler.pt")
    if scaler is not None:
        torch.save(scaler.state_dict(), folder / "scaler.pt")
    torch.save(rng_states, folder / "rng_states.pt")
    (folder / "trainer_state.json").write_text(json.dumps(trainer_state), encoding="utf-8")
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


def load_training_state(
    folder: Path,
    *,
    config: dict,
    must_match: tuple[str, ...],
    trainable: dict[str, torch.nn.Parameter],
    optimizer,
    lr_scheduler,
    scaler,
) -> tuple[dict, list[dict]]:
    """Load a checkpoint into the live objects; return the trainer state and the RNG states.

    Refuses a checkpoint whose config differs in a field of ``must_match`` (those shape the
    trained weights), naming each difference.
    """
    from safetensors.torch import load_file

    saved_config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    mismatched = [key for key in must_match if saved_config.get(key) != config.get(key)]
    if mismatched:
        raise CheckpointError(
            f"cannot resume from {folder}: it was trained with other "
            + ", ".join(f"{k} ({saved_config.get(k)!r} vs {config.get(k)!r})" for k in mismatched)
        )
    saved = load_file(folder / "trainable_params.safetensors")
    missing = sorted(set(trainable) - set(saved))
    if missing:
        raise CheckpointError(f"{folder} lacks weights for {missing[:3]}")
    with torch.no_grad():
        for name, parameter in trainable.items():
            parameter.copy_(saved[name].to(parameter.device, parameter.dtype))
    # CPU first: the optimizer moves its state next to each parameter itself.
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location="cpu"))
    lr_scheduler.load_state_dict(torch.load(folder / "scheduler.pt"))
    if scaler is not None and (folder / "scaler.pt").exists():
        scaler.load_state_dict(torch.load(folder / "scaler.pt"))
    trainer_state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    # Our own file: the python and numpy RNG states in it need full unpickling.
    rng_states = torch.load(folder / "rng_states.pt", weights_only=False)
    return trainer_state, rng_states
