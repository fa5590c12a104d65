"""Files that hold what a run learned: the policy file (parameters, observation statistics,
config) and the training checkpoints a run resumes from. Both are written atomically and
read with torch.load(weights_only=True), which executes no pickled code."""

from __future__ import annotations

import io
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from pgrun.config import PolicyConfig
from pgrun.envs import ObservationEncoder
from pgrun.errors import CheckpointError, first_line
from pgrun.policies import Policy, make_policy
from pgrun.rundir import CHECKPOINT_DIR

POLICY_FILE = "policy.pt"
CHECKPOINT_FORMAT = "pgrun-checkpoint-2"
"""bumped whenever a state_dict's layout changes; 2: flat optimizer buffers, native vector
env state, the collector's reset mask (pgrun 0.1.0 after session 5 of its development)"""


class PolicyFileError(ValueError):
    """A policy file that is missing, truncated, foreign or unsafe; the message is one line."""


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
    """torch.load(weights_only=True): tensors and plain values only; ValueError (one line) if
    the file is truncated, foreign, or holds any other pickled object."""
    try:
        payload = torch.load(path, weights_only=True)
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
            state = read_payload(path)
            written_by = str(state.get("format", ""))
            if written_by.startswith("pgrun-checkpoint-") and written_by != CHECKPOINT_FORMAT:
                raise CheckpointError(
                    f"{path} was written by another version of pgrun (format {written_by}; this one "
                    f"reads {CHECKPOINT_FORMAT}): it cannot continue exactly; start the run again "
                    f"with: pgrun rerun={run_dir}"
                )
            if written_by != CHECKPOINT_FORMAT:
                raise ValueError("not a pgrun checkpoint")
            return state, path
        except ValueError as error:
            print(f"pgrun: warning: skipping checkpoint {path.name}: unreadable ({error})", file=sys.stderr)
    raise CheckpointError(f"{run_dir}: none of its {len(files)} checkpoints is readable")


def describe_space(space: gym.Space) -> dict[str, Any]:
    """A Box or Discrete space as plain values and tensors (what weights_only loading accepts)."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    return {
        "type": "Box",
        "low": torch.as_tensor(space.low, dtype=torch.float32),
        "high": torch.as_tensor(space.high, dtype=torch.float32),
    }


def rebuild_space(description: dict[str, Any]) -> gym.spaces.Box | gym.spaces.Discrete:
    """The space `describe_space` described."""
    if description["type"] == "Discrete":
        return gym.spaces.Discrete(description["n"], start=description["start"])
    return gym.spaces.Box(description["low"].numpy(), description["high"].numpy(), dtype=np.float32)


def save_policy(
    path: Path,
    policy: Policy,
    config: dict[str, Any],
    encoder: ObservationEncoder,
    action_space: gym.Space,
    critic: torch.nn.Module | None = None,
) -> None:
    """Write the policy atomically: a crash leaves no partial file.

    Keys: state_dict (policy), config, spaces (observation and action, described by
    describe_space), obs_dim, obs_statistics (empty unless env.normalize_obs) and obs_clip,
    value_state_dict (the value network V(s) of algorithms with a critic). Everything is a
    tensor or a plain value, so torch.load(path, weights_only=True) reads it.
    """
    payload = {
        "state_dict": policy.state_dict(),
        "config": config,
        "spaces": {"observation": describe_space(encoder.space), "action": describe_space(action_space)},
        "obs_dim": encoder.dim,
        "obs_statistics": encoder.statistics.state_dict() if encoder.statistics is not None else {},
        "obs_clip": encoder.clip,
    }
    if critic is not None:
        payload["value_state_dict"] = critic.state_dict()
    atomic_save(payload, path)


@dataclass
class SavedPolicy:
    """What a policy file holds, rebuilt: the policy, its observation encoder (with the run's
    observation statistics, frozen), the run's config and the spaces it was trained on."""

    policy: Policy
    encoder: ObservationEncoder
    config: dict[str, Any]
    action_space: gym.spaces.Box | gym.spaces.Discrete

    def mismatch(self, observation_space: gym.Space, action_space: gym.Space) -> str | None:
        """Why an env with these spaces cannot run this policy (one line), or None.

        Box spaces must have the saved shape, Discrete ones the saved size and start; the
        bounds of a Box may differ (a Box action is clipped to the saved bounds)."""
        for what, saved, given in (
            ("observation", self.encoder.space, observation_space),
            ("action", self.action_space, action_space),
        ):
            if not same_kind_of_space(saved, given):
                return f"its {what} space is {space_text(given)}, the policy's is {space_text(saved)}"
        return None


def space_text(space: gym.Space) -> str:
    """A space in a few words: Discrete(3), Discrete(3, start=1), Box of shape (4,)."""
    if isinstance(space, gym.spaces.Box):
        return f"Box of shape {space.shape}"
    return repr(space) if isinstance(space, gym.spaces.Discrete) else type(space).__name__


def same_kind_of_space(saved: gym.Space, given: gym.Space) -> bool:
    if isinstance(saved, gym.spaces.Discrete):
        return isinstance(given, gym.spaces.Discrete) and (given.n, given.start) == (saved.n, saved.start)
    return isinstance(given, gym.spaces.Box) and given.shape == saved.shape


def read_policy(path: Path) -> SavedPolicy:
    """Rebuild the saved policy and its observation encoder from what the file stores.

    The file is read with torch.load(weights_only=True), which refuses any pickled object
    other than tensors and plain values; the policy is rebuilt from the stored spaces,
    sizes and statistics, without making the env and without importing anything the
    file names. Act with: policy.mode(encoder(obs)) or policy.distribution(encoder(obs)).sample().
    Raises PolicyFileError (one line) for a missing, truncated, foreign or unsafe file.
    """
    path = Path(path)
    if not path.is_file():
        raise PolicyFileError(f"{path}: no such policy file")
    try:
        payload = read_payload(path)
    except ValueError as error:  # truncated, foreign, or a pickle weights_only refuses
        raise PolicyFileError(f"{path}: not a readable pgrun policy file ({error})") from error
    missing = {"state_dict", "config", "spaces", "obs_statistics"} - set(payload)
    if missing:
        raise PolicyFileError(f"{path}: not a pgrun policy file (missing {', '.join(sorted(missing))})")
    try:
        config = payload["config"]
        encoder = ObservationEncoder(
            rebuild_space(payload["spaces"]["observation"]),
            normalize=bool(payload["obs_statistics"]),
            clip=payload.get("obs_clip", 10.0),
        )
        if encoder.statistics is not None:
            encoder.statistics.load_state_dict(payload["obs_statistics"])
        action_space = rebuild_space(payload["spaces"]["action"])
        policy = make_policy(encoder.dim, action_space, PolicyConfig(**config["policy"]))
        policy.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:  # keys of a policy, other contents
        reason = first_line(error) or type(error).__name__
        raise PolicyFileError(
            f"{path}: not a pgrun policy file ({type(error).__name__}: {reason})"
        ) from error
    return SavedPolicy(policy, encoder, config, action_space)


def load_policy(path: Path) -> tuple[Policy, ObservationEncoder, dict[str, Any]]:
    """The policy, observation encoder and config of a policy file (see `read_policy`)."""
    saved = read_policy(path)
    return saved.policy, saved.encoder, saved.config
