"""Saving and loading the trained policy: weights plus the config that rebuilds it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from pgrun.policies import Policy

POLICY_FILE = "policy.pt"


def save_policy(
    path: Path, policy: Policy, config: dict[str, Any], obs_dim: int, value_net: torch.nn.Module | None = None
) -> None:
    """Write {"state_dict", "config", "obs_dim"[, "value_state_dict"]} atomically: a crash
    leaves no partial file.

    Everything in it is a tensor or a plain value, so torch.load(path, weights_only=True) reads it.
    """
    payload = {"state_dict": policy.state_dict(), "config": config, "obs_dim": obs_dim}
    if value_net is not None:
        payload["value_state_dict"] = value_net.state_dict()
    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as tmp:
            torch.save(payload, tmp)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def load_policy(path: Path) -> tuple[Policy, dict[str, Any]]:
    """Rebuild the saved policy (its env is made once to read the action space)."""
    from pgrun.config import EnvConfig, PolicyConfig
    from pgrun.envs import make_vector_env
    from pgrun.policies import make_policy

    payload = torch.load(path, weights_only=True)
    config = payload["config"]
    envs = make_vector_env(EnvConfig(**config["env"]), num_envs=1)
    policy = make_policy(payload["obs_dim"], envs.single_action_space, PolicyConfig(**config["policy"]))
    envs.close()
    policy.load_state_dict(payload["state_dict"])
    return policy, config
