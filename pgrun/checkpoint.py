"""Saving and loading the trained policy: parameters, observation statistics and the config."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from pgrun.envs import ObservationEncoder
from pgrun.policies import Policy

POLICY_FILE = "policy.pt"


def save_policy(
    path: Path,
    policy: Policy,
    config: dict[str, Any],
    encoder: ObservationEncoder,
    critic: torch.nn.Module | None = None,
) -> None:
    """Write the policy atomically: a crash leaves no partial file.

    Keys: state_dict (policy), config, obs_dim, obs_statistics (empty unless
    env.normalize_obs), value_state_dict (the value network V(s) of algorithms with a critic). Everything is
    a tensor or a plain value, so torch.load(path, weights_only=True) reads it.
    """
    payload = {
        "state_dict": policy.state_dict(),
        "config": config,
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
    """Rebuild the saved policy and its observation encoder (the env is made once for its spaces).

    Act with: policy.mode(encoder(obs)) or policy.distribution(encoder(obs)).sample().
    """
    from pgrun.config import EnvConfig, PolicyConfig
    from pgrun.envs import make_vector_env
    from pgrun.policies import make_policy

    payload = torch.load(path, weights_only=True)
    config = payload["config"]
    envs = make_vector_env(EnvConfig(**config["env"]), num_envs=1)
    encoder = ObservationEncoder(envs.single_observation_space, normalize=bool(payload["obs_statistics"]))
    if encoder.statistics is not None:
        encoder.statistics.load_state_dict(payload["obs_statistics"])
    policy = make_policy(encoder.dim, envs.single_action_space, PolicyConfig(**config["policy"]))
    envs.close()
    policy.load_state_dict(payload["state_dict"])
    return policy, encoder, config
