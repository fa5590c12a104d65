"""pgrun's speed, measured in one run: envs, inference, the collector, PPO against
Stable-Baselines3 at identical hyperparameters, time to solve CartPole, every algorithm's
update, torch.compile's trade-off, peak memory and start-up. Writes a Markdown report with
the date and the machine.

Usage (after `make setup`; SB3 is in the `bench` extra, which `make setup` installs):
    python benchmarks/speed.py [--smoke] [--out docs/speed.md] [--only SECTION ...]
--smoke runs every section on tiny budgets in seconds (CI runs it so the script cannot rot);
its numbers mean nothing.

Every measurement runs in a fresh child process (`--worker NAME ARGS`), one at a time, with
one torch thread: imports and memory of one do not leak into the next, and the peak RSS is
the child's own. The machine is shared and noisy: compare ratios taken in one run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from gymnasium.envs.classic_control.cartpole import CartPoleEnv

ROOT = Path(__file__).resolve().parent.parent
PGRUN = [
    sys.executable,
    "-c",
    "import sys\ntry:\n    from pgrun.cli.train import main\n"
    "except ImportError:  # pgrun before the redesign of issue #21\n    from pgrun.cli import main\n"
    "sys.exit(main())",
]
"""the `pgrun` command as its console script runs it, for this pgrun or one on PYTHONPATH
(another checkout: its entry point moved in the redesign)"""

# PPO at identical work. CartPole: rl-baselines3-zoo's tuned PPO (8 envs x 32 steps,
# one 256-step minibatch, 20 epochs, gamma 0.98, GAE 0.8, lr 1e-3 annealed; the zoo also
# anneals the clip range, which costs nothing and is left constant at 0.2 in both).
# HalfCheetah-v5: SB3's PPO defaults (1 env, 2048 steps, minibatch 64, 10 epochs), with
# observation and reward normalization on both sides (pgrun's env group has them).
SB3_HP = {
    "cartpole": dict(
        n_steps=32, batch_size=256, n_epochs=20, gamma=0.98, gae_lambda=0.8, ent_coef=0.0, lr=1e-3, n_envs=8
    ),
    "halfcheetah": dict(
        n_steps=2048, batch_size=64, n_epochs=10, gamma=0.99, gae_lambda=0.95, ent_coef=0.0, lr=3e-4, n_envs=1
    ),
}
ENV_IDS = {"cartpole": "CartPole-v1", "halfcheetah": "HalfCheetah-v5"}
GYM_VECTORIZATION = {"native": "vector_entry_point", "sync": "sync", "async": "async"}
"""gymnasium.make_vec's vectorization_mode for each mode of the env tables"""


def pgrun_overrides(env: str) -> list[str]:
    """pgrun's command line for the same work as SB3_HP[env]: pgrun's ppo defaults (64x64
    tanh networks, orthogonal init, clip 0.2, as SB3's) without the env's tuned preset
    (~tuned: ppo_halfcheetah's 256x256 networks would be other work), the value network
    fitted on the same minibatches (value.iters = epochs), no KL early stop, no target;
    CartPole on its native vector env, as pgrun's own CartPole preset runs it."""
    hp = SB3_HP[env]
    batch = hp["n_steps"] * hp["n_envs"]
    return [
        "algo=ppo",
        f"env={env}",
        "~tuned",
        *(["env.vectorization=native"] if env == "cartpole" else []),
        f"env.num_envs={hp['n_envs']}",
        f"algo.batch_size={batch}",
        f"algo.minibatch_size={hp['batch_size']}",
        f"algo.epochs={hp['n_epochs']}",
        f"algo.gamma={hp['gamma']}",
        f"algo.gae_lambda={hp['gae_lambda']}",
        f"algo.ent_coef={hp['ent_coef']}",
        f"algo.optim.lr={hp['lr']}",
        "algo.optim.lr_schedule=linear",
        "algo.target_kl=null",
        f"algo.value.lr={hp['lr']}",
        f"algo.value.iters={hp['n_epochs']}",
        f"algo.value.minibatch_size={hp['batch_size']}",
        "algo.value.max_grad_norm=0.5",
        "policy.log_std_init=0.0",
    ]


# ---------------------------------------------------------------- workers (child processes)


def quiet_mujoco(env: str) -> None:
    """MuJoCo's warnings to stderr, not to MUJOCO_LOG.TXT in the working directory (as pgrun does)."""
    from pgrun.collection.envs import route_mujoco_warnings

    route_mujoco_warnings(ENV_IDS[env])


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_env(env: str, mode: str, num_envs: int, steps: int) -> dict:
    """Random-action env steps per second: `single` (one env, no wrapper vector), `native`
    (gymnasium's own vectorized implementation), `sync`, `async`."""
    import gymnasium as gym

    env_id = ENV_IDS[env]
    quiet_mujoco(env)
    if mode == "single":
        one = gym.make(env_id)
        one.reset(seed=0)
        actions = [one.action_space.sample() for _ in range(1000)]
        start = time.perf_counter()
        for t in range(steps):
            _, _, terminated, truncated, _ = one.step(actions[t % 1000])
            if terminated or truncated:
                one.reset()
        return {"steps_per_s": steps / (time.perf_counter() - start)}
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=GYM_VECTORIZATION[mode])
    envs.reset(seed=0)
    envs.action_space.seed(0)
    actions = [envs.action_space.sample() for _ in range(100)]
    calls = max(1, steps // num_envs)
    start = time.perf_counter()
    for t in range(calls):
        envs.step(actions[t % 100])
    elapsed = time.perf_counter() - start
    envs.close()
    return {"steps_per_s": calls * num_envs / elapsed, "seconds_per_call": elapsed / calls}


def policy_and_probe(env: str):
    """The shipped default policy for `env` (pgrun.networks.policy.make_policy, or pgrun.policies
    before the redesign of issue #21), its observation size, and its sampling call as the
    collector makes it: sample(obs [N, obs_dim]) -> the env's actions."""
    import gymnasium as gym

    from pgrun.config import PolicyConfig

    try:
        from pgrun.networks.policy import make_policy
    except ImportError:  # pgrun before the redesign of issue #21
        from pgrun.policies import make_policy

    def sample(policy, obs):  # the collector's call: policy.sample; older pgruns had other ones
        if hasattr(policy, "sample"):
            return policy.sample(obs)
        try:
            from pgrun.policies import sample_with_log_prob
        except ImportError:
            distribution = policy.distribution(obs)
            action = distribution.sample()
            return action, distribution.log_prob(action)
        return sample_with_log_prob(policy, obs)

    quiet_mujoco(env)
    probe = gym.make(ENV_IDS[env])
    obs_dim = int(gym.spaces.flatdim(probe.observation_space))
    policy = make_policy(obs_dim, probe.action_space, PolicyConfig())
    return obs_dim, lambda obs: policy.env_action(sample(policy, obs)[0])


def worker_inference(env: str, num_envs: int, calls: int) -> dict:
    """Seconds per call of the collector's policy step (its sampling call, and the action for the
    env) on [N, obs_dim], in torch.no_grad as the collector runs it."""
    import torch

    torch.set_num_threads(1)
    obs_dim, act = policy_and_probe(env)
    obs = torch.randn(num_envs, obs_dim)
    with torch.no_grad():
        for _ in range(100):
            act(obs)
        start = time.perf_counter()
        for _ in range(calls):
            act(obs)
    return {"seconds_per_call": (time.perf_counter() - start) / calls}


def worker_in_turns(env: str, mode: str, num_envs: int, steps: int) -> dict:
    """Seconds per call of the policy's sampling call and the raw env's step in turns, each
    acting on the other's output and nothing recorded: the least a collector can cost on this
    machine (the two loops apart, t_env + t_policy, each keep their own code and data in the
    core's caches; in turns they evict each other's)."""
    import gymnasium as gym
    import numpy as np
    import torch

    torch.set_num_threads(1)
    _, act = policy_and_probe(env)
    envs = gym.make_vec(ENV_IDS[env], num_envs=num_envs, vectorization_mode=GYM_VECTORIZATION[mode])
    obs, _ = envs.reset(seed=0)
    calls = max(1, steps // num_envs)
    with torch.no_grad():
        for _ in range(100):
            obs = envs.step(act(torch.from_numpy(np.asarray(obs, dtype=np.float32))))[0]
        start = time.perf_counter()
        for _ in range(calls):
            obs = envs.step(act(torch.from_numpy(np.asarray(obs, dtype=np.float32))))[0]
        elapsed = time.perf_counter() - start
    envs.close()
    return {"seconds_per_call": elapsed / calls}


def worker_collector(env: str, num_envs: int, vectorization: str, steps: int) -> dict:
    """pgrun's collector (policy inference, recording, no learning): env steps per second,
    on `vectorization` if this version of pgrun has it, else on sync."""
    import torch

    from pgrun.collection.collector import Collector
    from pgrun.collection.envs import make_vector_env
    from pgrun.collection.normalization import ObservationPreprocessor
    from pgrun.config import ConfigError, EnvConfig, PolicyConfig
    from pgrun.networks.policy import make_policy

    torch.set_num_threads(1)
    try:
        config = EnvConfig(id=ENV_IDS[env], num_envs=num_envs, vectorization=vectorization)
        envs = make_vector_env(config, num_envs)
    except (ConfigError, ValueError):  # a version before native vectorization
        vectorization = "sync"
        config = EnvConfig(id=ENV_IDS[env], num_envs=num_envs, vectorization=vectorization)
        envs = make_vector_env(config, num_envs)
    encoder = ObservationPreprocessor(envs.single_observation_space)
    policy = make_policy(encoder.dim, envs.single_action_space, PolicyConfig())
    batch_steps = max(num_envs, 2048 // num_envs * num_envs)
    collector = Collector(envs, policy, encoder, "steps", batch_steps, seed=0)
    collector.collect()  # warm-up
    done, start = 0, time.perf_counter()
    while done < steps:
        done += collector.collect().env_steps
    elapsed = time.perf_counter() - start
    envs.close()
    return {"steps_per_s": done / elapsed, "vectorization": vectorization}


def worker_collector_floor(
    env: str, num_envs: int, fastest: str, steps: int, calls: int, rounds: int
) -> dict:
    """The collector against its floor, all in one process: `rounds` interleaved rounds of the
    raw env on its fastest vectorization (t_env per call), the policy's sampling call
    (t_policy per call), the two in turns with nothing recorded (t_turns per call) and the
    collector (steps/s); the median of each. (In three separate processes, each side's noise
    moved the ratio by several points.)"""
    t_env, t_policy, t_turns, collected = [], [], [], []
    for _ in range(rounds):
        t_env.append(worker_env(env, fastest, num_envs, steps)["seconds_per_call"])
        t_policy.append(worker_inference(env, num_envs, calls)["seconds_per_call"])
        t_turns.append(worker_in_turns(env, fastest, num_envs, steps)["seconds_per_call"])
        collector = worker_collector(env, num_envs, fastest, steps)
        collected.append(collector["steps_per_s"])
    return {
        "t_env": statistics.median(t_env),
        "t_policy": statistics.median(t_policy),
        "t_turns": statistics.median(t_turns),
        "steps_per_s": statistics.median(collected),
        "vectorization": collector["vectorization"],
    }


def worker_pgrun(overrides: list[str]) -> dict:
    """One pgrun run as the CLI makes it (in this process); its summary and peak RSS."""
    from pgrun.cli.train import main

    with tempfile.TemporaryDirectory() as run_dir:
        sys.argv = [
            "pgrun",
            *overrides,
            "log.console=false",
            "log.tensorboard=false",
            f"hydra.run.dir={run_dir}",
        ]
        try:
            main()
        except SystemExit as exit_:
            if exit_.code not in (0, None):
                raise
        summary = json.loads((Path(run_dir) / "summary.json").read_text())
    # pgrun before phase timing (the "before" table) counts evaluation in: the PPO runs
    # evaluate once, at the end, on one episode
    training = summary["seconds"] - summary.get("seconds_by_phase", {}).get("eval", 0.0)
    reached_seconds = summary.get("target_reached_at_training_seconds", summary["target_reached_at_seconds"])
    return {
        "steps": summary["env_steps"],
        "training_seconds": training,
        "steps_per_s": summary["env_steps"] / training,
        "reached_at_step": summary["target_reached_at_step"],
        "reached_at_training_seconds": reached_seconds,
        "peak_rss_mib": peak_rss_mib(),
    }


def worker_sb3(env: str, steps: int, seed: int, target: float | None, eval_every: int) -> dict:
    """SB3 PPO at SB3_HP[env]; with a target, evaluated every eval_every steps (10
    deterministic episodes, their time excluded) until it reaches it."""
    import gymnasium as gym
    import numpy as np
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    quiet_mujoco(env)
    hp = SB3_HP[env]
    envs = make_vec_env(ENV_IDS[env], n_envs=hp["n_envs"], seed=seed)
    if env == "halfcheetah":
        envs = VecNormalize(envs, gamma=hp["gamma"])

    def linear(start: float) -> Callable[[float], float]:
        return lambda remaining: remaining * start

    model = PPO(
        "MlpPolicy",
        envs,
        n_steps=hp["n_steps"],
        batch_size=hp["batch_size"],
        n_epochs=hp["n_epochs"],
        gamma=hp["gamma"],
        gae_lambda=hp["gae_lambda"],
        ent_coef=hp["ent_coef"],
        learning_rate=linear(hp["lr"]),
        clip_range=0.2,
        seed=seed,
        device="cpu",
        verbose=0,
    )

    class SolveClock(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.eval_seconds, self.next_eval, self.reached = 0.0, eval_every, None
            self.eval_env = gym.make(ENV_IDS[env])

        def _on_step(self) -> bool:
            if target is None or self.num_timesteps < self.next_eval:
                return True
            self.next_eval += eval_every
            start = time.perf_counter()
            returns = []
            for episode in range(10):
                obs, _ = self.eval_env.reset(seed=10_000 + episode)
                total, done = 0.0, False
                while not done:
                    action, _ = self.model.predict(obs, deterministic=True)
                    obs, reward, terminated, truncated, _ = self.eval_env.step(action)
                    total, done = total + float(reward), terminated or truncated
                returns.append(total)
            self.eval_seconds += time.perf_counter() - start
            if np.mean(returns) >= target:
                self.reached = (self.num_timesteps, time.perf_counter() - self.started - self.eval_seconds)
                return False
            return True

        def _on_training_start(self) -> None:
            self.started = time.perf_counter()

    clock = SolveClock()
    start = time.perf_counter()
    model.set_logger(Logger(folder=None, output_formats=[]))  # (its default makes a /tmp/SB3-<time> dir)
    model.learn(total_timesteps=steps, callback=clock)
    training = time.perf_counter() - start - clock.eval_seconds
    return {
        "steps": model.num_timesteps,
        "training_seconds": training,
        "steps_per_s": model.num_timesteps / training,
        "reached_at_step": clock.reached[0] if clock.reached else None,
        "reached_at_training_seconds": clock.reached[1] if clock.reached else None,
        "peak_rss_mib": peak_rss_mib(),
    }


ATARI_OVERRIDES = [
    "algo=ppo", "env=pong", "env.atari.fire_on_reset=true", "env.atari.episodic_life=false",
]  # fmt: skip
"""pgrun's side of the Atari comparison: the ppo_atari preset (CleanRL's hyperparameters) on
ALE/Pong-v5, FIRE pressed at reset as SB3's AtariWrapper does for games that have it"""


def worker_sb3_atari(steps: int, seed: int) -> dict:
    """SB3's PPO with its CnnPolicy (the Nature CNN, shared by the policy and V) on ALE/Pong-v5
    through its own Atari wrappers at the ppo_atari preset's settings: 8 envs x 128 steps, 4
    epochs of 256, clip 0.1 (V's too), entropy 0.01, lr 2.5e-4 annealed, Adam eps 1e-5 (SB3's),
    gradient norm 0.5; no-op starts, frame skip 4, 84x84, reward signs, 4 frames stacked, no
    episodic life (as pgrun's default), v5's sticky actions."""
    import ale_py
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    torch.set_num_threads(1)
    envs = make_atari_env(
        "ALE/Pong-v5", n_envs=8, seed=seed, env_kwargs={"frameskip": 1},
        wrapper_kwargs={"terminal_on_life_loss": False},
    )  # fmt: skip
    model = PPO(
        "CnnPolicy", VecFrameStack(envs, n_stack=4), n_steps=128, batch_size=256, n_epochs=4,
        gamma=0.99, gae_lambda=0.95, clip_range=0.1, clip_range_vf=0.1, ent_coef=0.01, vf_coef=0.5,
        learning_rate=lambda remaining: remaining * 2.5e-4, max_grad_norm=0.5, seed=seed, device="cpu",
    )  # fmt: skip
    start = time.perf_counter()
    model.set_logger(Logger(folder=None, output_formats=[]))  # (its default makes a /tmp/SB3-<time> dir)
    model.learn(total_timesteps=steps)
    training = time.perf_counter() - start
    return {
        "steps": model.num_timesteps,
        "steps_per_s": model.num_timesteps / training,
        "peak_rss_mib": peak_rss_mib(),
    }


def composed(*overrides: str):
    """The Config `pgrun <overrides>` would run, composed in this process."""
    from hydra import compose, initialize_config_dir

    from pgrun.algorithms import register_schemas
    from pgrun.config import config_dir, to_config

    register_schemas()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return to_config(
            compose("config", overrides=["log.console=false", "log.tensorboard=false", *overrides])
        )


def worker_update(algo: str, repeats: int) -> dict:
    """Seconds per update (estimate + the rule's update) of `algo`'s shipped defaults on one
    CartPole batch of about 2,048 steps (100 episodes of a fresh policy for the algorithms
    that take episodes), repeated on the same batch."""
    import torch

    from pgrun.training.loop import Training

    torch.set_num_threads(1)
    config = composed(f"algo={algo}", "env=cartpole")
    size = "algo.batch_size=100" if config.algo.batch_unit == "episodes" else "algo.batch_size=2048"
    config = composed(f"algo={algo}", "env=cartpole", size)
    with tempfile.TemporaryDirectory() as run_dir:
        training = Training(config, Path(run_dir))
        parts = getattr(training, "parts", training)  # (pgrun before #21: no RunParts)
        batch = parts.collector.collect()
        training.rule.update(parts.estimate(batch, training.rule.critic), progress=0.0)  # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            training.rule.update(parts.estimate(batch, training.rule.critic), progress=0.0)
        elapsed = (time.perf_counter() - start) / repeats
        training.close()
    return {"batch_steps": batch.env_steps, "seconds_per_update": elapsed}


def learners(space, action_space, shared_encoder: bool) -> tuple:
    """pgrun's default policy for these spaces (default PolicyConfig), a value network (only a
    head over the policy's encoder with `shared_encoder`), and one Adam over both."""
    from pgrun.algorithms import optim
    from pgrun.config import OptimizerConfig, PolicyConfig
    from pgrun.networks.observations import observation_layout
    from pgrun.networks.policy import make_policy
    from pgrun.networks.value import value_networks

    layout = observation_layout(space)
    policy = make_policy(layout, action_space, PolicyConfig())
    value = value_networks(layout, PolicyConfig())([64, 64], policy.encoder if shared_encoder else None)
    learned = {"policy": policy, "value": value.head if shared_encoder else value}  # (shared: V's head)
    return layout, policy, value, optim.make_optimizer(learned, OptimizerConfig())


def ppo_minibatch_step(policy, value, optimizer, obs, shared_encoder: bool) -> Callable[[], None]:
    """One PPO minibatch step over `obs` as pgrun takes it: one encoder pass read by both heads
    with `shared_encoder` (else the policy and V each on `obs`), the clipped surrogate (clip
    0.1) plus V's squared error, backward, the gradient norm clipped at 0.5, Adam; actions,
    advantages and targets drawn once."""
    import torch

    from pgrun.algorithms.ppo import clipped_surrogate

    size = obs.shape[0]
    advantages, targets = torch.randn(size), torch.randn(size)
    with torch.no_grad():
        actions, output = policy.sample(obs)
        logp_old = policy.log_prob_from(policy.params_from_output(output), actions)

    def step() -> None:
        if shared_encoder:
            features = policy.encoder(obs)
            params, values = policy.params_from_features(features), value.from_features(features)
        else:
            params, values = policy.distribution_params(obs), value(obs)
        logp = policy.log_prob_from(params, actions)
        loss = clipped_surrogate(logp, logp_old, advantages, 0.1)[0] + (values - targets).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.clip_grad_norm(0.5)
        optimizer.step()

    return step


def worker_compile(env: str, steps: int) -> dict:
    """One PPO minibatch step at the sizes pgrun runs `env` with (SB3_HP's minibatch for the
    MLP tasks; for Pong the ppo_atari preset's: 256 frames, the Nature CNN shared by the policy
    and a value head), eager and with the networks compiled as compile=true compiles them
    (pgrun.training.device.compile_networks): seconds of the first compiled step (compiling,
    with an empty on-disk cache, as on a new machine), then seconds per step of each."""
    cache = tempfile.TemporaryDirectory()
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache.name  # (a warm cache compiles in a few seconds)
    import gymnasium as gym
    import numpy as np
    import torch

    from pgrun.training.device import compile_networks

    torch.set_num_threads(1)
    torch.manual_seed(0)
    if env == "pong":
        space, action_space, size = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(6), 256
    else:
        quiet_mujoco(env)
        probe = gym.make(ENV_IDS[env])
        space, action_space, size = probe.observation_space, probe.action_space, SB3_HP[env]["batch_size"]
    layout, policy, value, optimizer = learners(space, action_space, shared_encoder=env == "pong")
    if env == "pong":
        obs = torch.randint(0, 256, (size, layout.dim), dtype=torch.uint8)
    else:
        obs = torch.randn(size, layout.dim)
    step = ppo_minibatch_step(policy, value, optimizer, obs, shared_encoder=env == "pong")

    def timed() -> tuple[float, float]:
        start = time.perf_counter()
        step()
        first = time.perf_counter() - start
        for _ in range(max(1, steps // 20)):
            step()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        return first, (time.perf_counter() - start) / steps

    _, eager = timed()
    try:
        compile_networks(policy, value, torch.device("cpu"))
        compiling, compiled = timed()
    except Exception as error:  # (no C compiler, say): reported, not fatal
        return {"eager": eager, "error": f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"}
    finally:
        cache.cleanup()
    return {"eager": eager, "compiled": compiled, "compiling": compiling}


def worker_atari_bound(iterations: int, overrides: list[str]) -> dict:
    """The work any PPO does per iteration of the Atari comparison, and nothing else, each part
    timed alone (after one untimed round) in this process with one torch thread: 8 copies of
    ALE/Pong-v5 with pgrun's preprocessing stepped 128 times on random actions; 128 forward
    passes of the Nature CNN and both heads over 8 frames; 16 PPO minibatch steps over 256
    frames (ppo_minibatch_step: one encoder pass for both heads). No batch is recorded, no GAE,
    no logging; freed memory kept for reuse as pgrun's training keeps it. Seconds per iteration
    of each part; their sum bounds from below the time of any program that runs these envs and
    these torch kernels at the comparison's settings. `overrides` are added to the comparison's
    (the smoke run's smaller frames)."""
    import torch

    from pgrun.collection.envs import env_spaces, make_vector_env
    from pgrun.training.memory import keep_freed_memory

    keep_freed_memory()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = composed(*ATARI_OVERRIDES, *overrides).env
    envs = make_vector_env(config, 8, record=False)
    envs.reset(seed=0)
    envs.action_space.seed(0)
    actions = [envs.action_space.sample() for _ in range(128)]

    def env_steps() -> None:
        for action in actions:
            envs.step(action)

    layout, policy, value, optimizer = learners(*env_spaces(config), shared_encoder=True)
    frames = torch.randint(0, 256, (8, layout.dim), dtype=torch.uint8)

    @torch.no_grad()
    def forward_passes() -> None:
        for _ in range(128):
            features = policy.encoder(frames)
            policy.sample_from_features(features), value.from_features(features)

    minibatch = torch.randint(0, 256, (256, layout.dim), dtype=torch.uint8)
    step = ppo_minibatch_step(policy, value, optimizer, minibatch, shared_encoder=True)

    def minibatch_steps() -> None:
        for _ in range(16):
            step()

    def seconds_per_iteration(part: Callable[[], None]) -> float:
        part()  # (untimed: first calls allocate and pick their kernels)
        start = time.perf_counter()
        for _ in range(iterations):
            part()
        return (time.perf_counter() - start) / iterations

    seconds = {
        "env": seconds_per_iteration(env_steps),
        "forward": seconds_per_iteration(forward_passes),
        "update": seconds_per_iteration(minibatch_steps),
    }
    envs.close()
    return seconds


class FirstStepCartPole(CartPoleEnv):
    """CartPole that writes the wall-clock time of its first step to $PGRUN_FIRST_STEP_FILE
    (env.id=speed:FirstStepCartPole, with benchmarks/ on PYTHONPATH)."""

    def step(self, action: int) -> tuple:
        path = Path(os.environ["PGRUN_FIRST_STEP_FILE"])
        if not path.exists():
            path.write_text(repr(time.time()))
        return super().step(action)


WORKERS: dict[str, Callable[..., dict]] = {
    "env": worker_env,
    "inference": worker_inference,
    "collector": worker_collector_floor,
    "pgrun": worker_pgrun,
    "sb3": worker_sb3,
    "sb3_atari": worker_sb3_atari,
    "atari_bound": worker_atari_bound,
    "update": worker_update,
    "compile": worker_compile,
}


def run_worker(name: str, *args: object) -> dict:
    """Run WORKERS[name](*args) in a child process; its JSON result."""
    command = [sys.executable, __file__, "--worker", name, json.dumps(args)]
    with tempfile.TemporaryDirectory() as cwd:  # whatever a library drops in its cwd goes with it
        result = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    if result.returncode != 0:
        raise RuntimeError(f"worker {name}{args} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- sections (this process)


def smoke_subset(cases: list, smoke: bool) -> list:
    """A smoke run measures every kind of case once: the first and the last."""
    return [cases[0], cases[-1]] if smoke and len(cases) > 2 else cases


def median_of(repeats: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(repeats))


def section_envs(smoke: bool) -> list[str]:
    steps = 2_000 if smoke else 200_000
    rows = ["| env | vectorization | envs | steps/s |", "|---|---|---|---|"]
    cases = [("cartpole", "single", 1)]
    cases += [("cartpole", mode, n) for mode in ("native", "sync") for n in (1, 8, 64, 1024)]
    cases += [("cartpole", "async", n) for n in (1, 8)]
    cases += [("halfcheetah", "single", 1), ("halfcheetah", "sync", 1), ("halfcheetah", "async", 2)]
    for env, mode, n in smoke_subset(cases, smoke):
        budget = steps if env == "cartpole" else steps // 10
        result = run_worker("env", env, mode, n, max(budget, n * 20))
        rows.append(f"| {ENV_IDS[env]} | {mode} | {n} | {result['steps_per_s']:,.0f} |")
    rows += ["", "Async at 64 and 1,024 envs is left out: one process per copy on 2 cores."]
    return rows


def section_collector(smoke: bool) -> list[str]:
    """pgrun's collector against the floor N / (t_env + t_policy), t_env from the fastest
    vectorization gymnasium has for the env (native for CartPole), t_policy per call; medians
    of three rounds in one process."""
    steps = 4_096 if smoke else 200_000
    calls = 200 if smoke else 5_000
    rows = [
        "| env | envs | t_env per call | t_policy per call | floor steps/s | in turns steps/s "
        "| collector steps/s | fraction | in turns / floor |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    cases = [("cartpole", 8, "native"), ("cartpole", 64, "native"), ("halfcheetah", 1, "sync")]
    for env, n, fastest in smoke_subset(cases, smoke):
        budget = steps if env == "cartpole" else steps // 10
        collector = run_worker("collector", env, n, fastest, max(budget, n * 20), calls, 1 if smoke else 3)
        t_env, t_policy, collected = collector["t_env"], collector["t_policy"], collector["steps_per_s"]
        floor, in_turns = n / (t_env + t_policy), n / collector["t_turns"]
        rows.append(
            f"| {ENV_IDS[env]} | {n} | {t_env * 1e6:,.0f} us ({fastest}) | {t_policy * 1e6:,.0f} us "
            f"| {floor:,.0f} | {in_turns:,.0f} | {collected:,.0f} ({collector['vectorization']}) "
            f"| {collected / floor:.2f} | {in_turns / floor:.2f} |"
        )
    rows += [
        "",
        "fraction: collector / floor, floor = N / (t_env + t_policy) from the two loops timed apart. "
        "In turns: the policy's call and the raw env's step alternating, each on the other's "
        "output, nothing recorded; what is left between it and the collector is the recording.",
    ]
    return rows


def section_ppo(smoke: bool) -> list[str]:
    budgets = {"cartpole": 2_048 if smoke else 60_000, "halfcheetah": 2_048 if smoke else 20_480}
    rows = [
        "| task (hyperparameters) | SB3 steps/s | pgrun steps/s | ratio | SB3 peak RSS | pgrun peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    labels = {"cartpole": "CartPole-v1 (zoo)", "halfcheetah": "HalfCheetah-v5 (SB3 defaults)"}
    for env, steps in budgets.items():
        common = [f"total_steps={steps}", f"eval.every={10 * steps}", "eval.episodes=1", "seed=0"]
        sb3 = run_worker("sb3", env, steps, 0, None, steps)
        ours = run_worker("pgrun", [*pgrun_overrides(env), *common])
        rows.append(
            f"| {labels[env]} | {sb3['steps_per_s']:,.0f} | {ours['steps_per_s']:,.0f} "
            f"| {ours['steps_per_s'] / sb3['steps_per_s']:.2f}x | {sb3['peak_rss_mib']:,.0f} MiB "
            f"| {ours['peak_rss_mib']:,.0f} MiB |"
        )
    return rows


def section_atari(smoke: bool) -> list[str]:
    """PPO with the Nature CNN on Pong, pgrun against SB3, alternated `repeats` times."""
    steps, repeats = (1_024, 1) if smoke else (8_192, 2)
    frames = ["env.atari.screen_size=42"] if smoke else []  # (smoke: the Nature CNN's smallest frames)
    common = [f"total_steps={steps}", f"eval.every={10 * steps}", "eval.episodes=1", "seed=0", *frames]
    sb3, ours, bounds = [], [], []
    for _ in range(repeats):
        sb3.append(run_worker("sb3_atari", steps, 0))
        ours.append(run_worker("pgrun", [*ATARI_OVERRIDES, *common]))
        bounds.append(run_worker("atari_bound", steps // 1_024, frames))
    sb3_rate = statistics.median(run["steps_per_s"] for run in sb3)
    our_rate = statistics.median(run["steps_per_s"] for run in ours)
    bound = min(bounds, key=lambda parts: sum(parts.values()))  # (the least time measured)
    bound_seconds = sum(bound.values())
    return [
        "| task | SB3 steps/s | pgrun steps/s | ratio | SB3 peak RSS | pgrun peak RSS |",
        "|---|---|---|---|---|---|",
        f"| ALE/Pong-v5, ppo_atari (CleanRL's hyperparameters), {steps:,} steps x {repeats} | "
        f"{sb3_rate:,.0f} | {our_rate:,.0f} | {our_rate / sb3_rate:.2f}x "
        f"| {max(run['peak_rss_mib'] for run in sb3):,.0f} MiB "
        f"| {max(run['peak_rss_mib'] for run in ours):,.0f} MiB |",
        "",
        "Both sides: 8 copies of ALE/Pong-v5 stepped in one process, 128 steps each, 4 epochs of 4",
        "minibatches, one torch thread. pgrun stores frames channels last (oneDNN's faster layout) and",
        "takes pi_old and V(s_t) from the collection's forward pass, as SB3 does.",
        "",
        "The bound: the work any PPO at these settings does per 1,024 steps, each part timed alone in",
        "one process with one torch thread (the envs on random actions; the Nature CNN's forward passes",
        "over 8 frames; PPO minibatch steps over 256: one encoder pass, both heads, backward, Adam),",
        f"the fastest of {repeats} rounds:",
        "",
        "| envs, 128 steps x 8 | forward passes, 128 x 8 frames | minibatch steps, 16 x 256 frames "
        "| bound steps/s | bound / SB3 |",
        "|---|---|---|---|---|",
        f"| {bound['env']:.2f} s | {bound['forward']:.2f} s | {bound['update']:.2f} s "
        f"| {1_024 / bound_seconds:,.0f} | {1_024 / bound_seconds / sb3_rate:.2f}x |",
        "",
        "No program that steps these envs and runs these torch kernels in one process on one thread",
        "runs faster than the bound, so its ratio to SB3 cannot exceed the last column.",
    ]


SOLVE_SEEDS = list(range(20))
"""the seeds of the solve table (--solve-seeds); medians of 5 seeds moved by a seed or two"""


def section_solve(smoke: bool) -> list[str]:
    seeds = [0] if smoke else SOLVE_SEEDS
    target, budget, every = (15.0, 4_096, 1_024) if smoke else (475.0, 300_000, 2_048)
    results: dict[str, list[dict]] = {"SB3 PPO (zoo hyperparameters)": [], "pgrun ppo (shipped defaults)": []}
    for seed in seeds:
        results["SB3 PPO (zoo hyperparameters)"].append(
            run_worker("sb3", "cartpole", budget, seed, target, every)
        )
        results["pgrun ppo (shipped defaults)"].append(
            run_worker(
                "pgrun",
                [
                    "algo=ppo",
                    "env=cartpole",
                    f"seed={seed}",
                    f"total_steps={budget}",
                    f"target_return={target}",
                    "stop_at_target=true",
                    f"eval.every={every}",
                ],
            )
        )
    rows = [
        f"Until the mean of 10 deterministic evaluation episodes (every {every:,} steps) reaches "
        f"{target:g}; evaluation time excluded; seeds {seeds[0]}-{seeds[-1]}; median (min to max).",
        "",
        "| runner | solved | seconds | env steps |",
        "|---|---|---|---|",
    ]
    for name, runs in results.items():
        solved = [run for run in runs if run["reached_at_step"] is not None]
        rows.append(
            f"| {name} | {len(solved)}/{len(runs)} "
            f"| {spread([run['reached_at_training_seconds'] for run in solved], '.1f')} "
            f"| {spread([run['reached_at_step'] for run in solved], ',.0f')} |"
        )
    return rows


def spread(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    low, middle, high = (format(v, fmt) for v in (min(values), statistics.median(values), max(values)))
    return f"{middle} ({low} to {high})"


def section_updates(smoke: bool) -> list[str]:
    algos = sorted(path.stem for path in (ROOT / "configs" / "algo").glob("*.yaml"))
    rows = ["| algo | batch (env steps) | ms per update | ms per 1,000 steps |", "|---|---|---|---|"]
    for algo in smoke_subset(algos, smoke):
        result = run_worker("update", algo, 1 if smoke else 5)
        per_update = result["seconds_per_update"] * 1e3
        rows.append(
            f"| {algo} | {result['batch_steps']:,} | {per_update:,.1f} "
            f"| {per_update / result['batch_steps'] * 1e3:,.1f} |"
        )
    return rows


def section_compile(smoke: bool) -> list[str]:
    rows = [
        "| task (minibatch) | eager per step | compiled per step | speed-up | first compiled step "
        "| steps to win back the compile |",
        "|---|---|---|---|---|---|",
    ]
    cases = [("cartpole", 20)] if smoke else [("cartpole", 2_000), ("halfcheetah", 2_000), ("pong", 40)]
    for env, steps in cases:
        result = run_worker("compile", env, steps)
        size = 256 if env == "pong" else SB3_HP[env]["batch_size"]
        label = f"{'ALE/Pong-v5, Nature CNN' if env == 'pong' else ENV_IDS[env]} ({size})"
        if "error" in result:
            rows.append(f"| {label} | {result['eager'] * 1e6:,.0f} us | failed: {result['error']} | | | |")
            continue
        eager, compiled, compiling = result["eager"], result["compiled"], result["compiling"]
        gain = eager - compiled
        win_back = f"{compiling / gain:,.0f}" if gain > 0 else "never"
        rows.append(
            f"| {label} | {eager * 1e6:,.0f} us | {compiled * 1e6:,.0f} us | {eager / compiled:.2f}x "
            f"| {compiling:.1f} s | {win_back} |"
        )
    rows += [
        "",
        "compile=true compiles the networks this way (off by default). The first compiled step",
        "compiles with an empty on-disk cache, as a new machine would; with inductor's cache warm (the",
        "same shapes, a later process) it takes a few seconds instead. A run also recompiles once for",
        "each new batch shape (the collection's, the last minibatch's).",
    ]
    return rows


def section_startup(smoke: bool) -> list[str]:
    repeats = 1 if smoke else 5

    def wall(expected: int, *args: str) -> float:
        """Seconds `pgrun ARGS` takes, which must exit `expected` (0, or 2 for bad input)."""
        start = time.perf_counter()
        result = subprocess.run([*PGRUN, *args], capture_output=True, text=True, cwd=tempfile.gettempdir())
        if result.returncode != expected:  # (a traceback would be timed as an answer)
            raise RuntimeError(f"pgrun {' '.join(args)} exited {result.returncode}: {result.stderr[-500:]}")
        return time.perf_counter() - start

    def first_step() -> float:
        with tempfile.TemporaryDirectory() as folder:
            stamp = Path(folder) / "first_step"
            # (the benchmarks' env beside any PYTHONPATH given: another checkout of pgrun)
            path = os.pathsep.join(filter(None, [str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH")]))
            env = os.environ | {"PGRUN_FIRST_STEP_FILE": str(stamp), "PYTHONPATH": path}
            started = time.time()
            command = [*PGRUN, "algo=ppo", "env.id=speed:FirstStepCartPole", "total_steps=2048"]
            command += ["env.max_episode_steps=500"]
            command += ["eval.episodes=1", "log.console=false", f"hydra.run.dir={folder}/run"]
            subprocess.run(command, capture_output=True, env=env, check=True)
            return float(stamp.read_text()) - started

    rows = ["| what | seconds (median) |", "|---|---|"]
    rows.append(f"| `pgrun --help` | {median_of(repeats, lambda: wall(0, '--help')):.2f} |")
    rows.append(
        f"| a config error (`pgrun algo=nope`) | {median_of(repeats, lambda: wall(2, 'algo=nope')):.2f} |"
    )
    value_error = median_of(repeats, lambda: wall(2, "algo=ppo", "algo.clip=-1"))
    rows.append(f"| a bad value, found by composing (`pgrun algo=ppo algo.clip=-1`) | {value_error:.2f} |")
    rows.append(f"| invocation to the first env step | {median_of(repeats, first_step):.2f} |")
    return rows


SECTIONS = {
    "envs": ("Raw env throughput (random actions)", section_envs),
    "collector": ("The collector against its floor", section_collector),
    "ppo": ("PPO training steps/s at identical hyperparameters (evaluation excluded)", section_ppo),
    "atari": (
        "PPO on Atari with the Nature CNN at identical hyperparameters (evaluation excluded)",
        section_atari,
    ),
    "solve": ("Time to solve CartPole-v1", section_solve),
    "updates": ("Time per update, every algorithm (CartPole, shipped defaults)", section_updates),
    "compile": ("torch.compile of the networks in a PPO minibatch step (compile=true)", section_compile),
    "startup": ("Start-up", section_startup),
}


def machine() -> str:
    import torch

    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    python = platform.python_version()
    return (
        f"{cpu or platform.processor()}, {os.cpu_count()} cores, Python {python}, torch {torch.__version__}"
    )


def code_version() -> str:
    """The commit of the pgrun measured (with "+changes" if its code or configs have
    uncommitted changes), or "an unknown commit" outside a git checkout."""
    import pgrun

    folder = Path(pgrun.__file__).resolve().parent
    git = ["git", "-C", str(folder.parent)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if commit.returncode != 0:
        return "an unknown commit"
    status = [*git, "status", "--porcelain", "--", "pgrun", "configs"]
    dirty = subprocess.run(status, capture_output=True, text=True).stdout
    return commit.stdout.strip() + ("+changes" if dirty.strip() else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny budgets: checks the script runs")
    parser.add_argument("--out", type=Path, help="write the Markdown report here (default: print only)")
    parser.add_argument("--only", nargs="*", choices=list(SECTIONS), help="run only these sections")
    parser.add_argument(
        "--solve-seeds", metavar="FIRST-LAST", help="the solve table's seeds (default 0-19), e.g. 20-39"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](*json.loads(args.args))))
        return
    if args.solve_seeds:
        first, _, last = args.solve_seeds.partition("-")
        if not (first.isdigit() and last.isdigit() and int(first) <= int(last)):
            parser.error(f"--solve-seeds={args.solve_seeds!r} is not allowed: give FIRST-LAST, e.g. 20-39")
        SOLVE_SEEDS[:] = range(int(first), int(last) + 1)
    started = time.perf_counter()
    report = [
        f"# pgrun speed ({'smoke run: numbers mean nothing' if args.smoke else 'benchmarks/speed.py'})",
        "",
        f"{datetime.date.today().isoformat()}; {machine()}; pgrun at {code_version()}.",
        f"Command: `python benchmarks/speed.py{' '.join(['', *sys.argv[1:]])}`",
    ]
    for name in args.only or list(SECTIONS):
        title, section = SECTIONS[name]
        print(f"speed: {name} ...", file=sys.stderr)
        rows = section(args.smoke)
        report += ["", f"## {title}", "", *rows]
    report += ["", f"({time.perf_counter() - started:.0f} s in all.)"]
    text = "\n".join(report) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
