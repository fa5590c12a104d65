"""Checkpoints: everything a run needs to continue exactly (checkpoints/step_<env steps>.pt),
written atomically and read with torch.load(weights_only=True), which executes no pickled
code; the newest readable one is what a run resumes from."""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from pgrun.errors import CheckpointError
from pgrun.training.rundir import CHECKPOINT_DIR

CHECKPOINT_FORMAT = "pgrun-checkpoint-3"
"""bumped whenever a state_dict's layout changes; 2: flat optimizer buffers, native vector
env state, the collector's reset mask (pgrun 0.1.0 after session 5 of its development);
3: the policy's state_dict keys of the encoder/head/distribution split (issue #21)"""
READABLE_FORMATS = (CHECKPOINT_FORMAT, "pgrun-checkpoint-2")
"""formats this version resumes exactly (a format-2 policy's keys are renamed on load)"""


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_save(payload: dict[str, Any], path: Path) -> None:
    """torch.save to a temporary file beside `path`, fsync, then rename over `path`: a crash
    or a full disk leaves the previous file (if any) as it was, never a partial one."""
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp_name, 0o666 & ~current_umask())  # mkstemp makes it private (0600)
        serialized = io.BytesIO()  # serialized first, so that a full disk raises an OSError
        torch.save(payload, serialized)  # (torch's own file writer reports it as a RuntimeError)
        with os.fdopen(handle, "wb") as tmp:
            tmp.write(serialized.getbuffer())
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


def read_payload(path: Path) -> dict[str, Any]:
    """torch.load(weights_only=True): tensors and plain values only, on the CPU whichever device
    wrote them (loading them into networks copies them to the run's device); ValueError (one
    line) if the file is truncated, foreign, or holds any other pickled object."""
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")  # (read on any machine)
    except Exception as error:
        text = str(error).strip()
        if "WeightsUnpickler error:" in text:  # torch's first line suggests weights_only=False
            detail = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0]
            raise ValueError(f"not tensors and plain values, or not a torch file: {detail}") from error
        raise ValueError(text.splitlines()[0] if text else type(error).__name__) from error
    if not isinstance(payload, dict):
        raise ValueError(f"holds a {type(payload).__name__}, not a dict")
    return payload


def checkpoint_files(run_dir: Path) -> list[Path]:
    """The run's checkpoints, oldest first."""
    return sorted((run_dir / CHECKPOINT_DIR).glob("step_*.pt"))


def save_checkpoint(run_dir: Path, state: dict[str, Any], env_steps: int, keep: int) -> Path:
    """Write `state` as checkpoints/step_<env steps>.pt, then delete all but the newest `keep`."""
    directory = run_dir / CHECKPOINT_DIR
    directory.mkdir(exist_ok=True)
    path = directory / f"step_{env_steps:012d}.pt"
    atomic_save({"format": CHECKPOINT_FORMAT, **state}, path)
    for old in checkpoint_files(run_dir)[:-keep]:
        old.unlink()
    return path


def checked_checkpoint(path: Path, run_dir: Path) -> dict[str, Any]:
    """The state in checkpoint `path` of `run_dir`: ValueError (one line) if it is unreadable
    or not a pgrun checkpoint, CheckpointError if another version of pgrun wrote it."""
    state = read_payload(path)
    written_by = str(state.get("format", ""))
    if written_by.startswith("pgrun-checkpoint-") and written_by not in READABLE_FORMATS:
        raise CheckpointError(
            f"{path} was written by another version of pgrun (format {written_by}; this one "
            f"reads {', '.join(READABLE_FORMATS)}): it cannot continue exactly; start the run again "
            f"with: pgrun rerun={run_dir}"
        )
    if written_by not in READABLE_FORMATS:
        raise ValueError("not a pgrun checkpoint")
    return state


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The state in one checkpoint file; CheckpointError (one line) if it cannot be read."""
    try:
        return checked_checkpoint(path, path.parent.parent)
    except ValueError as error:
        raise CheckpointError(f"{path}: not a readable pgrun checkpoint ({error})") from error


def load_checkpoint(run_dir: Path) -> tuple[dict[str, Any], Path]:
    """The newest readable checkpoint and its path; an unreadable newer one is skipped with
    a warning on stderr. Raises CheckpointError if there is none."""
    files = checkpoint_files(run_dir)
    if not files:
        raise CheckpointError(
            f"{run_dir} has no checkpoint to resume from ({run_dir / CHECKPOINT_DIR} is empty)"
        )
    for path in reversed(files):
        try:
            return checked_checkpoint(path, run_dir), path
        except ValueError as error:
            print(f"pgrun: warning: skipping checkpoint {path.name}: unreadable ({error})", file=sys.stderr)
    raise CheckpointError(f"{run_dir}: none of its {len(files)} checkpoints is readable")
