"""The schema of the env group (configs/env/*.yaml): which env, how many copies, how they are
vectorized and wrapped, what the learner sees of observations and rewards, and the Atari
preprocessing of ALE games."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from omegaconf import MISSING, OmegaConf

from pgrun.config.checks import checked


@dataclass
class AtariConfig:
    """The Atari preprocessing of Mnih et al. (2015) as Machado et al. (2018) revisit it, applied
    to every ALE game (ALE/*-v5, *NoFrameskip-v4) with gymnasium's AtariPreprocessing and
    FrameStackObservation; the game is made with frameskip=1, since these skip the frames."""

    noop_max: int = checked(30, ge=0)
    """at each reset, a random number of no-op actions in [0, noop_max]"""
    frame_skip: int = checked(4, ge=1)
    """frames per agent step, the action repeated; the observation is the max of the last two"""
    screen_size: int = checked(84, ge=1)
    """observed frames are resized to screen_size x screen_size"""
    grayscale: bool = True
    """observe grayscale frames (else RGB, channels last)"""
    frame_stack: int = checked(4, ge=1)
    """the observation is this many of the latest frames, stacked: [frame_stack, 84, 84] uint8"""
    episodic_life: bool = False
    """a lost life is the end of an episode for the learner (no bootstrapping past it) while the
    game goes on; logged returns stay whole games (Mnih et al. 2015; Machado et al. 2018 advise
    against it)"""
    fire_on_reset: bool = False
    """press FIRE at the start of every game and after every lost life (games such as Breakout
    wait for it); not for games without a FIRE action"""


def is_atari_id(env_id: str) -> bool:
    """An id of an ALE game: ALE/<Game>-v5 (or -v0) and <Game>NoFrameskip-v4."""
    return env_id.startswith("ALE/") or env_id.endswith("NoFrameskip-v4")


@dataclass
class EnvConfig:
    id: str = MISSING
    """gymnasium id ("CartPole-v1"), "module:Id-v0" (import module, then make Id-v0),
    or "module:ClassName" (a gymnasium.Env subclass, registered on the fly)"""
    num_envs: int = checked(4, ge=1)
    """parallel copies stepped by the collector's vector env"""
    vectorization: str = checked("sync", choices=("sync", "async", "native"))
    """gymnasium vector env: sync steps copies in this process, async in subprocesses, native
    uses the env's own vectorized implementation where it has one (CartPole-v1: all copies
    in a few numpy operations)"""
    max_episode_steps: int | None = checked(None, ge=1)
    """override the env's time limit (truncation); null keeps the registered one"""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """keyword arguments passed to gymnasium.make"""
    obs_keys: list[str] | None = None
    """keep only these entries of a Dict observation (gymnasium's FilterObservation), e.g. to
    drop MiniGrid's text mission; null keeps them all"""
    wrappers: list[str] = field(default_factory=list)
    """"module:Name" of gymnasium wrappers (or functions env -> env) applied to each copy,
    innermost first, after obs_keys"""
    normalize_obs: bool = False
    """standardize observations by running mean and std (saved with the policy); the vector
    entries only: images are scaled to [0, 1] in the network instead"""
    clip_obs: float = checked(10.0, gt=0.0)
    """with normalize_obs: standardized observations are clipped to [-clip_obs, clip_obs]"""
    normalize_reward: bool = False
    """divide the rewards the learner sees by a running std of each copy's discounted return
    (gamma = algo.gamma); logged returns stay raw"""
    clip_reward: float | None = checked(10.0, gt=0.0)
    """with normalize_reward: scaled rewards are clipped to [-clip_reward, clip_reward]; null: not clipped"""
    sign_reward: bool = False
    """the learner sees sign(r) in {-1, 0, 1} (the reward clipping of Mnih et al. 2015), before
    any normalize_reward; logged returns stay raw (an Atari game's score)"""
    atari: AtariConfig = field(default_factory=AtariConfig)
    """preprocessing of ALE games (env.id ALE/*-v5 or *NoFrameskip-v4)"""

    def ignored_keys(self) -> dict[str, str]:
        """{key: why} for the keys that do nothing with the other values (set to anything
        but their default, they are refused)."""
        ignored = {}
        if not self.normalize_obs:
            ignored["clip_obs"] = "with env.normalize_obs=false: it clips normalized observations"
        if not self.normalize_reward:
            ignored["clip_reward"] = "with env.normalize_reward=false: it clips scaled rewards"
        if not is_atari_id(self.id):
            why = f"with env.id={self.id}: it preprocesses ALE games only"
            ignored |= {f"atari.{f.name}": why for f in fields(AtariConfig)}
        return ignored


def saved_env_config(saved: dict[str, Any]) -> EnvConfig:
    """The EnvConfig of a run's saved (plain) env config, typed again: its nested parts
    (env.atari) as dataclasses; the keys this version of pgrun does not know are left out."""
    known = {entry.name for entry in fields(EnvConfig)}
    typed = OmegaConf.merge(OmegaConf.structured(EnvConfig), {k: v for k, v in saved.items() if k in known})
    return OmegaConf.to_object(typed)
