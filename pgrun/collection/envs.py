"""Environments: resolve the configured id (registered, module:Id, module:Class), build vector
envs of its copies, and check that pgrun has a policy for their spaces."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

from pgrun.collection.atari import atari_make_kwargs, atari_wrappers, is_ale_env
from pgrun.collection.env_state import EpisodeRecorder
from pgrun.collection.suites import register_suite, suite_wrappers
from pgrun.config import ConfigError, EnvConfig, is_atari_id
from pgrun.errors import first_line
from pgrun.networks.action_spaces import unsupported_action_space
from pgrun.networks.observations import UnsupportedSpace, observation_layout

ALE_MAX_FRAMES = 108_000
"""an ALE game's time limit in emulator frames where its registration names none (30 minutes
at 60 frames a second, as Machado et al. 2018 cap episodes)"""

GUARD_MAX_EPISODE_STEPS = 100_000
"""the time limit of an env that has none registered and none configured: without one, a
batch of complete episodes or an evaluation would never end"""


def resolve_env_id(env_id: str) -> str:
    """Return a registered gymnasium id for `env_id`, importing and registering as needed.

    Accepted forms: a registered id ("CartPole-v1"); "module:Id-v0", where importing the
    module registers Id-v0; "module:ClassName", a gymnasium.Env subclass in that module,
    which is registered here as "module.ClassName". The module may be dotted
    ("my_pkg.envs:Corridor"); it is imported as `python -m` would find it: from an installed
    package, PYTHONPATH, or the current directory.
    """
    if ":" not in env_id:
        if env_id in gym.registry:
            return env_id
        if (problem := register_suite(env_id)) is not None:
            raise ConfigError(f"env.id={env_id} {problem}")
        if env_id in gym.registry:
            return env_id
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "use a registered id or module:Class"
        raise ConfigError(f"env.id={env_id} is not a registered gymnasium id; {hint}")
    module_name, _, name = env_id.partition(":")
    try:
        module = import_from_here(module_name)
    except ImportError as error:
        raise ConfigError(f"env.id={env_id}: cannot import module {module_name!r} ({error})") from error
    if name in gym.registry:
        return name
    target = getattr(module, name, None)
    if isinstance(target, type) and issubclass(target, gym.Env):
        # gymnasium ids allow dots in the name but not in a namespace ("my_pkg.envs/Corridor")
        registered_id = f"{module_name}.{name}"
        if registered_id not in gym.registry:
            gym.register(id=registered_id, entry_point=target)
        return registered_id
    raise ConfigError(
        f"env.id={env_id}: module {module_name!r} neither registers {name!r} "
        "nor defines a gymnasium.Env subclass of that name"
    )


def import_from_here(module_name: str) -> Any:
    """Import a module from an installed package, PYTHONPATH or the current directory (the
    `pgrun` command's own path starts at its bin/ folder, not at the current directory).
    The directory is on the path for this import only, after installed packages, so that a
    local folder named like a package (./wandb/, say) does not stand in for it later."""
    here = os.getcwd()
    added = "" not in sys.path and here not in sys.path
    if added:
        sys.path.append(here)
    try:
        return importlib.import_module(module_name)
    finally:
        if added:
            sys.path.remove(here)


MUJOCO_WARNINGS_SEEN: set[str] = set()


def route_mujoco_warnings(env_id: str) -> None:
    """For MuJoCo envs: print MuJoCo's warnings on stderr (each once) instead of letting
    MuJoCo append them to MUJOCO_LOG.TXT in the user's working directory. Deprecation notices
    are dropped: they concern gymnasium's bundled models (HalfCheetah-v5's `settotalmass`, at
    every load), not the run."""
    if "mujoco" not in str(gym.spec(env_id).entry_point):
        return
    import mujoco

    def warn(message: str) -> None:
        if "is deprecated" in message:
            return  # about gymnasium's bundled model files, not about the run
        if message not in MUJOCO_WARNINGS_SEEN:
            MUJOCO_WARNINGS_SEEN.add(message)
            print(f"pgrun: warning: MuJoCo: {message}", file=sys.stderr)

    mujoco.set_mju_user_warning(warn)


def episode_step_limit(config: EnvConfig) -> tuple[int, bool]:
    """The time limit episodes get: env.max_episode_steps, else the registered one, else
    GUARD_MAX_EPISODE_STEPS; and whether it is that guard (the env has no limit of its own)."""
    if config.max_episode_steps is not None:
        return config.max_episode_steps, False
    spec = gym.spec(resolve_env_id(config.id))
    if is_atari_id(config.id) and is_ale_env(spec.id):
        # the game's own limit, in emulator frames (108,000: 30 minutes), as agent steps
        frames = spec.kwargs.get("max_num_frames_per_episode") or ALE_MAX_FRAMES
        return -(-frames // config.atari.frame_skip), False
    registered = spec.max_episode_steps
    return (registered, False) if registered is not None else (GUARD_MAX_EPISODE_STEPS, True)


def make_vector_env(
    config: EnvConfig,
    num_envs: int,
    render_mode: str | None = None,
    wrap: Callable[[gym.Env, int], gym.Env] | None = None,
    info_keys: Sequence[str] = (),
    record: bool = True,
) -> VectorEnv:
    """`num_envs` copies of the configured env, auto-resetting in the same step.

    With AutoresetMode.SAME_STEP an episode's last observation arrives in
    info["final_obs"] and the returned observation already starts the next episode. Each
    copy records its current episode (pgrun.collection.env_state) so that a checkpoint can restore it.
    Async workers ignore SIGINT and SIGTERM: the main process decides when to stop, and
    closes them. `render_mode` is passed to gymnasium.make; `wrap(env, index)`, if given,
    wraps copy `index` (e.g. to record it; not with env.vectorization=native). Each copy is
    gymnasium.make's env, then FilterObservation (env.obs_keys), an ALE game's preprocessing
    (env.atari, pgrun.collection.atari), the suite's wrappers and env.wrappers, innermost
    first; `info_keys` are the info entries its steps pass on.
    `record=False` leaves the episode records out (envs that no checkpoint will restore).
    """
    env_id = resolve_env_id(config.id)
    limit = episode_step_limit(config)[0]
    wrappers = [*suite_wrappers(env_id), *(import_wrapper(name) for name in config.wrappers)]
    if is_atari_id(config.id) and is_ale_env(env_id):
        make_kwargs = atari_make_kwargs(env_id, dict(config.kwargs), config.atari)
        wrappers = [*atari_wrappers(config.atari, limit), *wrappers]
    else:
        make_kwargs = {**config.kwargs, "max_episode_steps": limit}
    if render_mode is not None:
        make_kwargs["render_mode"] = render_mode
    route_mujoco_warnings(env_id)

    def make_plain() -> gym.Env:
        env = gym.make(env_id, **make_kwargs)
        if config.obs_keys is not None:
            env = keep_obs_keys(env, config.obs_keys)
        for wrapper in wrappers:
            env = wrapper(env)
        return EpisodeRecorder(env, info_keys) if record else env

    def make_one(index: int) -> gym.Env:
        return make_plain() if wrap is None else wrap(make_plain(), index)

    def make_in_worker(index: int) -> gym.Env:
        if multiprocessing.parent_process() is not None:  # AsyncVectorEnv also makes one in this process
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return make_one(index)

    try:
        check_spaces(make_plain())
    except gym.error.Error as error:
        raise ConfigError(f"env.id={config.id}: {error}") from error
    except TypeError as error:  # unexpected keyword in env.kwargs
        raise ConfigError(f"env.kwargs={dict(config.kwargs)!r}: {error}") from error
    if config.vectorization == "native":
        if config.obs_keys is not None or config.wrappers:
            raise ConfigError(
                "env.vectorization=native runs the env's own vector implementation, which takes no "
                "wrappers: use sync or async with env.obs_keys or env.wrappers"
            )
        if wrap is not None:
            raise ValueError("env copies cannot be wrapped one by one with env.vectorization=native")
        return make_native_vector_env(env_id, num_envs, make_kwargs)
    if config.vectorization == "sync":
        copies = [functools.partial(make_one, index) for index in range(num_envs)]
        return SyncVectorEnv(copies, autoreset_mode=AutoresetMode.SAME_STEP)
    copies = [functools.partial(make_in_worker, index) for index in range(num_envs)]
    return AsyncVectorEnv(copies, autoreset_mode=AutoresetMode.SAME_STEP)


def env_spaces(config: EnvConfig) -> tuple[gym.Space, gym.Space]:
    """The observation and action spaces of one copy of the env (made in this process, then closed)."""
    probe = make_vector_env(dataclasses.replace(config, vectorization="sync"), 1)
    try:
        return probe.single_observation_space, probe.single_action_space
    finally:
        probe.close()


def make_native_vector_env(env_id: str, num_envs: int, make_kwargs: dict) -> VectorEnv:
    """The env's own vectorized implementation (e.g. CartPoleVectorEnv). It resets a copy in
    the step after its episode ended (AutoresetMode.NEXT_STEP): the collector skips those
    steps. Its state is saved whole in checkpoints (pgrun.collection.env_state.native_state)."""
    spec = gym.spec(env_id)
    if spec.vector_entry_point is None:
        raise ConfigError(
            f"env.vectorization=native is not allowed: {env_id} has no native vectorized implementation "
            "(gymnasium's CartPole-v1 has one); must be one of sync, async"
        )
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **make_kwargs)


def next_step_autoreset(envs: VectorEnv) -> bool:
    """Whether the vector env resets a copy in the step after its episode ended."""
    return envs.metadata.get("autoreset_mode") == AutoresetMode.NEXT_STEP


def check_spaces(env: gym.Env) -> None:
    """Raise ConfigError unless pgrun has a policy for the env's spaces."""
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    try:
        observation_layout(obs_space)
    except UnsupportedSpace as error:
        raise ConfigError(
            f"{error}{OBS_KEYS_HINT if isinstance(obs_space, gym.spaces.Dict) else ''}"
        ) from None
    if (problem := unsupported_action_space(act_space)) is not None:
        raise ConfigError(problem)


OBS_KEYS_HINT = "; env.obs_keys=[...] keeps only the entries you name"


def keep_obs_keys(env: gym.Env, keys: Sequence[str]) -> gym.Env:
    """gymnasium's FilterObservation, with a one-line ConfigError for a key the env lacks."""
    space = env.observation_space
    if not isinstance(space, gym.spaces.Dict):
        raise ConfigError(f"env.obs_keys={list(keys)!r} needs a Dict observation space; the env's is {space}")
    if missing := [key for key in keys if key not in space.spaces]:
        raise ConfigError(
            f"env.obs_keys: {missing[0]!r} is not an entry of the observation; "
            f"it has {', '.join(space.spaces)}"
        )
    return gym.wrappers.FilterObservation(env, list(keys))


def import_wrapper(name: str) -> Callable[[gym.Env], gym.Env]:
    """The wrapper "module:Name" names (a gymnasium.Wrapper subclass or a function env -> env)."""
    module_name, _, attribute = name.partition(":")
    try:
        target = getattr(import_from_here(module_name), attribute) if attribute else None
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"env.wrappers: cannot import {name!r} ({first_line(error)})") from error
    if not callable(target):
        raise ConfigError(
            f"env.wrappers: {name!r} must name a wrapper class or a function env -> env (module:Name)"
        )
    return target
