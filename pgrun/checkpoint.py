"""Saving and loading the trained policy: parameters, observation statistics and the config."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from pgrun.config import PolicyConfig
from pgrun.envs import ObservationEncoder
from pgrun.policies import Policy, make_policy

POLICY_FILE = "policy.pt"


class PolicyFileError(ValueError):
    """A policy file that is missing, truncated, foreign or unsafe; the message is one line."""


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
    describe_space), obs_dim, obs_statistics (empty unless env.normalize_obs),
    value_state_dict (the value network V(s) of algorithms with a critic). Everything is a
    tensor or a plain value, so torch.load(path, weights_only=True) reads it.
    """
    payload = {
        "state_dict": policy.state_dict(),
        "config": config,
        "spaces": {"observation": describe_space(encoder.space), "action": describe_space(action_space)},
        "obs_dim": encoder.dim,
        "obs_statistics": encoder.statistics.state_dict() if encoder.statistics is not None else {},
    }
    if critic is not None:
        payload["value_state_dict"] = critic.state_dict()
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as tmp:
            torch.save(payload, tmp)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def load_policy(path: Path) -> tuple[Policy, ObservationEncoder, dict[str, Any]]:
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
        payload = torch.load(path, weights_only=True)
    except Exception as error:  # truncated, foreign, or a pickle weights_only refuses
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PolicyFileError(f"{path}: not a readable pgrun policy file ({reason})") from error
    missing = {"state_dict", "config", "spaces", "obs_statistics"} - set(
        payload if isinstance(payload, dict) else {}
    )
    if missing:
        raise PolicyFileError(f"{path}: not a pgrun policy file (missing {', '.join(sorted(missing))})")
    config = payload["config"]
    encoder = ObservationEncoder(
        rebuild_space(payload["spaces"]["observation"]), normalize=bool(payload["obs_statistics"])
    )
    if encoder.statistics is not None:
        encoder.statistics.load_state_dict(payload["obs_statistics"])
    policy = make_policy(
        encoder.dim, rebuild_space(payload["spaces"]["action"]), PolicyConfig(**config["policy"])
    )
    policy.load_state_dict(payload["state_dict"])
    return policy, encoder, config
