"""The policy file (policy.pt): what a finished run leaves to act with. Its parameters, the
observation statistics, the spaces it was trained on and the run's config, as tensors and
plain values written atomically; read back with torch.load(weights_only=True), which
executes no pickled code, and rebuilt without making the env. A checkpoint reads as a policy
file too (the policy of a run under way or interrupted), and a run dir names its policy.pt,
or while it has none its newest checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from pgrun.collection.normalization import ObservationPreprocessor
from pgrun.config import PolicyConfig
from pgrun.errors import first_line
from pgrun.networks.observations import observation_layout
from pgrun.networks.policy import Policy, make_policy
from pgrun.training.checkpoint import atomic_save, checkpoint_files, read_payload
from pgrun.training.rundir import CHECKPOINT_DIR

POLICY_FILE = "policy.pt"


class PolicyFileError(ValueError):
    """A policy file that is missing, truncated, foreign or unsafe; the message is one line."""


def describe_space(space: gym.Space) -> dict[str, Any]:
    """A space as plain values and tensors (what weights_only loading accepts), nested for
    Dict and Tuple spaces."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": torch.as_tensor(space.nvec),
            "start": torch.as_tensor(space.start),
        }
    if isinstance(space, gym.spaces.MultiBinary):
        return {"type": "MultiBinary", "n": [int(n) for n in np.atleast_1d(space.n)]}
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict", "spaces": {key: describe_space(entry) for key, entry in space.spaces.items()}}
    if isinstance(space, gym.spaces.Tuple):
        return {"type": "Tuple", "spaces": [describe_space(entry) for entry in space]}
    return {
        "type": "Box",
        "low": torch.as_tensor(space.low),  # in the space's own dtype: integer bounds stay exact
        "high": torch.as_tensor(space.high),
        "dtype": str(space.dtype),
    }


def describe_spaces(observation_space: gym.Space, action_space: gym.Space) -> dict[str, Any]:
    """A policy's spaces, as policy files and checkpoints store them (`describe_space`)."""
    return {"observation": describe_space(observation_space), "action": describe_space(action_space)}


def rebuild_space(description: dict[str, Any]) -> gym.Space:
    """The space `describe_space` described (a Box saved before dtypes were recorded is float32)."""
    kind = description["type"]
    if kind == "Discrete":
        return gym.spaces.Discrete(description["n"], start=description["start"])
    if kind == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(description["nvec"].numpy(), start=description["start"].numpy())
    if kind == "MultiBinary":
        return gym.spaces.MultiBinary(description["n"] if len(description["n"]) > 1 else description["n"][0])
    if kind == "Dict":
        return gym.spaces.Dict({key: rebuild_space(entry) for key, entry in description["spaces"].items()})
    if kind == "Tuple":
        return gym.spaces.Tuple([rebuild_space(entry) for entry in description["spaces"]])
    dtype = np.dtype(description.get("dtype", "float32"))
    low, high = description["low"].numpy(), description["high"].numpy()
    if dtype == np.bool_:
        return gym.spaces.Box(0, 1, low.shape, dtype=np.bool_)
    return gym.spaces.Box(low.astype(dtype), high.astype(dtype), dtype=dtype)  # (older files: float32)


def save_policy(
    path: Path,
    policy: Policy,
    config: dict[str, Any],
    preprocessor: ObservationPreprocessor,
    action_space: gym.Space,
    critic: torch.nn.Module | None = None,
    eval_seed: int | None = None,
) -> None:
    """Write the policy atomically: a crash leaves no partial file.

    Keys: state_dict (policy), config, spaces (observation and action, described by
    describe_space), obs_dim, obs_statistics (empty unless env.normalize_obs) and obs_clip,
    value_state_dict (the value network V(s) of algorithms with a critic), eval_seed (the seed
    the run's last evaluation reset its copies with, if it evaluated). Everything is a
    tensor or a plain value, so torch.load(path, weights_only=True) reads it; the networks'
    tensors are CPU copies, so that a machine without the run's device reads them too.
    """
    payload = {
        "state_dict": on_cpu(policy.state_dict()),
        "config": config,
        "spaces": describe_spaces(preprocessor.space, action_space),
        "obs_dim": preprocessor.dim,
        "obs_statistics": preprocessor.statistics.state_dict() if preprocessor.statistics is not None else {},
        "obs_clip": preprocessor.clip,
    }
    if critic is not None:
        payload["value_state_dict"] = on_cpu(critic.state_dict())
    if eval_seed is not None:
        payload["eval_seed"] = eval_seed
    atomic_save(payload, path)


def on_cpu(state: dict[str, Any]) -> dict[str, Any]:
    return {key: value.cpu() if isinstance(value, torch.Tensor) else value for key, value in state.items()}


@dataclass
class SavedPolicy:
    """What a policy file holds, rebuilt: the policy, its observation preprocessing (with the run's
    observation statistics, frozen), the run's config and the spaces it was trained on."""

    policy: Policy
    preprocessor: ObservationPreprocessor
    config: dict[str, Any]
    action_space: gym.Space
    eval_seed: int | None = None
    """the seed of the run's last evaluation (None in files that do not record it)"""

    def mismatch(self, observation_space: gym.Space, action_space: gym.Space) -> str | None:
        """Why an env with these spaces cannot run this policy (one line), or None.

        Box spaces must have the saved shape, Discrete ones the saved size and start; the
        bounds of a Box may differ (a Box action is clipped to the saved bounds)."""
        for what, saved, given in (
            ("observation", self.preprocessor.space, observation_space),
            ("action", self.action_space, action_space),
        ):
            if not same_kind_of_space(saved, given):
                return f"its {what} space is {space_text(given)}, the policy's is {space_text(saved)}"
        return None


def space_text(space: gym.Space) -> str:
    """A space in a few words: Discrete(3), Discrete(3, start=1), Box of shape (4,), Dict(...)."""
    if isinstance(space, gym.spaces.Box):
        return f"Box of shape {space.shape}"
    if isinstance(space, gym.spaces.Dict):
        return "Dict(" + ", ".join(f"{key}: {space_text(entry)}" for key, entry in space.spaces.items()) + ")"
    if isinstance(space, gym.spaces.Tuple):
        return "Tuple(" + ", ".join(space_text(entry) for entry in space) + ")"
    return repr(space)


def same_kind_of_space(saved: gym.Space, given: gym.Space) -> bool:
    """Same type and sizes (Box shapes, Discrete sizes and starts, entries of Dicts and Tuples);
    a Box's bounds may differ."""
    if isinstance(saved, gym.spaces.Box):
        return (
            isinstance(given, gym.spaces.Box)
            and given.shape == saved.shape
            and observation_layout(given).parts[0].kind == observation_layout(saved).parts[0].kind
        )  # (an image the policy reads as bytes is not a float Box of that shape)
    if isinstance(saved, gym.spaces.Dict):
        return (
            isinstance(given, gym.spaces.Dict)
            and list(given.spaces) == list(saved.spaces)
            and all(same_kind_of_space(saved[key], given[key]) for key in saved.spaces)
        )
    if isinstance(saved, gym.spaces.Tuple):
        return (
            isinstance(given, gym.spaces.Tuple)
            and len(given) == len(saved)
            and all(same_kind_of_space(a, b) for a, b in zip(saved, given, strict=True))
        )
    return type(given) is type(saved) and given == saved


def policy_path(path: Path) -> Path:
    """The policy `path` names: a policy file or checkpoint itself, a run dir's policy.pt, or,
    in a run dir without one (a run under way or interrupted), its newest checkpoint."""
    path = Path(path)
    if path.is_dir():
        if (path / POLICY_FILE).is_file():
            return path / POLICY_FILE
        if checkpoints := checkpoint_files(path):
            return checkpoints[-1]
        raise PolicyFileError(
            f"{path} holds no {POLICY_FILE} and no checkpoint (a run writes {POLICY_FILE} when it "
            f"finishes, unless log.save_policy=false, and checkpoints under {CHECKPOINT_DIR}/ as it goes)"
        )
    if not path.exists():
        raise PolicyFileError(f"{path}: no such run dir, policy file or checkpoint")
    return path


def as_policy_payload(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's state as a policy file's payload: the policy's weights from the update
    rule's state, the run's config, observation statistics and spaces. A checkpoint of an
    older pgrun, which did not save the spaces, gets them from one copy of the run's env
    (made from its saved env config: its module imported, its wrappers applied)."""
    config = checkpoint["config"]
    spaces = checkpoint.get("spaces")
    if spaces is None:
        from pgrun.collection.envs import env_spaces
        from pgrun.config.env_schema import saved_env_config

        env = saved_env_config(config["env"])
        try:
            spaces = describe_spaces(*env_spaces(env))
        except Exception as error:  # the env's own failure, a missing module or extra
            raise PolicyFileError(
                f"a checkpoint of an older pgrun, without the policy's spaces, and its env {env.id} "
                f"could not be made to read them: {type(error).__name__}: {first_line(error)}"
            ) from error
    return {
        "state_dict": checkpoint["rule"]["policy"],
        "config": config,
        "spaces": spaces,
        "obs_statistics": checkpoint["observation_statistics"],
        "obs_clip": config["env"]["clip_obs"],
    }


def read_policy(path: Path) -> SavedPolicy:
    """Rebuild the saved policy and its observation preprocessing from what the file stores.

    The file is read with torch.load(weights_only=True), which refuses any pickled object
    other than tensors and plain values; the policy is rebuilt from the stored spaces,
    sizes and statistics, without making the env and without importing anything the
    file names. Act with: policy.mode(preprocessor(obs)) or policy.distribution(preprocessor(obs)).sample().
    Raises PolicyFileError (one line) for a missing, truncated, foreign or unsafe file.
    """
    path = Path(path)
    if not path.is_file():
        raise PolicyFileError(f"{path}: no such policy file")
    try:
        payload = read_payload(path)
    except ValueError as error:  # truncated, foreign, or a pickle weights_only refuses
        raise PolicyFileError(f"{path}: not a readable pgrun policy file ({error})") from error
    if str(payload.get("format", "")).startswith("pgrun-checkpoint-") and "rule" in payload:
        try:
            payload = as_policy_payload(payload)
        except PolicyFileError as error:
            raise PolicyFileError(f"{path}: {error}") from error
        except (KeyError, TypeError) as error:
            raise PolicyFileError(
                f"{path}: not a readable pgrun checkpoint (missing {first_line(error)})"
            ) from error
    missing = {"state_dict", "config", "spaces", "obs_statistics"} - set(payload)
    if missing:
        raise PolicyFileError(f"{path}: not a pgrun policy file (missing {', '.join(sorted(missing))})")
    try:
        config = payload["config"]
        preprocessor = ObservationPreprocessor(
            rebuild_space(payload["spaces"]["observation"]),
            normalize=bool(payload["obs_statistics"]),
            clip=payload.get("obs_clip", 10.0),
        )
        if preprocessor.statistics is not None:
            preprocessor.statistics.load_state_dict(payload["obs_statistics"])
        action_space = rebuild_space(payload["spaces"]["action"])
        policy = make_policy(preprocessor.layout, action_space, PolicyConfig(**config["policy"]))
        policy.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:  # keys of a policy, other contents
        reason = first_line(error) or type(error).__name__
        raise PolicyFileError(
            f"{path}: not a pgrun policy file ({type(error).__name__}: {reason})"
        ) from error
    return SavedPolicy(policy, preprocessor, config, action_space, payload.get("eval_seed"))


def load_policy(path: Path) -> tuple[Policy, ObservationPreprocessor, dict[str, Any]]:
    """The policy, observation preprocessing and config of a policy file (see `read_policy`)."""
    saved = read_policy(path)
    return saved.policy, saved.preprocessor, saved.config
