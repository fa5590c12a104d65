"""compile=true: the networks run as torch.compile'd kernels and learn what the eager ones
learn, up to float rounding (checked on the CPU; CUDA graphs, a GPU's mode, are not)."""

import copy
import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from tests_support import pgrun, random_batch, random_like

from pgrun.algorithms.ppo import PPO, PPOConfig, PPOValueConfig
from pgrun.config import PolicyConfig
from pgrun.estimation.estimators import Advantages
from pgrun.networks.observations import observation_layout
from pgrun.networks.policy import make_policy
from pgrun.networks.value import value_networks
from pgrun.training.device import compile_networks

TOLERANCE = {"atol": 1e-5, "rtol": 1e-4}
"""how far a compiled update's parameters may be from the eager update's: kernels fused and
reordered change float32 rounding, never the math"""

SPACES = {
    "vector": gym.spaces.Box(-1.0, 1.0, (6,), dtype=np.float32),
    "image": gym.spaces.Box(0, 255, (10, 10, 2), dtype=np.uint8),
}


def ppo_on(space: gym.Space, shared: bool) -> PPO:
    layout = observation_layout(space)
    policy = make_policy(layout, gym.spaces.Discrete(3), PolicyConfig(hidden_sizes=[16]))
    value = PPOValueConfig(hidden_sizes=[16], share_encoder=shared, iters=2, minibatch_size=16)
    config = PPOConfig(epochs=2, minibatch_size=16, ent_coef=0.01, value=value)
    return PPO(config, policy, value_networks(layout, PolicyConfig(hidden_sizes=[16]), torch.device("cpu")))


def image_batch(policy, space: gym.Space, seed: int):
    batch = random_batch(policy, obs_dim=int(np.prod(space.shape)), seed=seed, steps=16, envs=2)
    if space.dtype == np.uint8:  # (random_batch draws floats: make them the bytes of frames)
        generator = torch.Generator().manual_seed(seed)
        frames = torch.randint(0, 256, batch.obs.shape, dtype=torch.uint8, generator=generator)
        with torch.no_grad():
            params = policy.distribution_params(frames)
        batch.obs, batch.next_obs, batch.params = frames, frames.clone(), params
        batch.logp = policy.log_prob_from(params, batch.actions).detach()
    return batch


@pytest.mark.parametrize(("space", "shared"), [("vector", False), ("image", True)])
def test_a_compiled_ppo_update_learns_what_the_eager_one_learns(space, shared):
    torch.manual_seed(0)
    eager = ppo_on(SPACES[space], shared)
    start, compiled = copy.deepcopy(eager), copy.deepcopy(eager)
    modules = compile_networks(compiled.policy, compiled.critic, torch.device("cpu"))
    assert len(modules) == (1 if shared else 2)  # a shared encoder is compiled once
    assert all(module._compiled_call_impl is not None for module in modules)
    batch = image_batch(eager.policy, SPACES[space], seed=1)
    phi, targets = random_like(batch.rewards, seed=2), random_like(batch.rewards, seed=3)
    infos = []
    for rule in (eager, compiled):
        torch.manual_seed(4)  # (the same minibatch shuffles)
        infos.append(rule.update(Advantages(batch, phi, value_targets=targets), progress=0.0))
    for name in ("policy", "critic"):
        rules = (start, eager, compiled)
        before, after, after_compiled = (list(getattr(rule, name).parameters()) for rule in rules)
        assert max((a - b).abs().max() for a, b in zip(after, before, strict=True)) > 1e-3  # it learned
        for a, b in zip(after, after_compiled, strict=True):
            torch.testing.assert_close(b, a, **TOLERANCE)
    assert infos[1]["train/approx_kl"] == pytest.approx(infos[0]["train/approx_kl"], rel=1e-3)


def test_a_compiled_run_resumes_eagerly_and_compile_may_change_on_resume(tmp_path):
    run_dir = tmp_path / "run"
    common = ["log.console=false", "eval.episodes=2"]
    done = pgrun(
        "algo=ppo", "env=cartpole", "total_steps=2048", "compile=true", *common, f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    resumed = pgrun(f"resume={run_dir}", "total_steps=4096", "compile=false", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps"] == 4096


@pytest.mark.parametrize("algo", ["trpo", "npg"])
def test_compile_is_refused_where_the_step_takes_second_derivatives(tmp_path, algo):
    refused = pgrun(f"algo={algo}", "env=cartpole", "compile=true", cwd=tmp_path)
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines() == [
        "pgrun: error: compile=true is not allowed: the trust-region step takes Fisher-vector products "
        "(second derivatives of the policy), which torch.compile'd networks do not give; use compile=false"
    ]
    assert not (tmp_path / "outputs").exists()
