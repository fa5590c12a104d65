"""The collector on real gymnasium envs: shapes, episode bookkeeping, truncation."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from pgrun.collection.collector import Collector
from pgrun.collection.envs import make_vector_env
from pgrun.collection.normalization import ObservationPreprocessor
from pgrun.config import EnvConfig, PolicyConfig
from pgrun.networks.policy import make_policy


def make_collector(env: EnvConfig, unit: str, size: int, seed: int = 0, wrap=lambda envs: envs) -> Collector:
    torch.manual_seed(seed)
    envs = wrap(make_vector_env(env, env.num_envs))
    encoder = ObservationPreprocessor(envs.single_observation_space, normalize=env.normalize_obs)
    policy = make_policy(encoder.dim, envs.single_action_space, PolicyConfig())
    return Collector(envs, policy, encoder, unit, size, seed=seed)


def test_steps_mode_records_a_consistent_batch():
    collector = make_collector(EnvConfig(id="CartPole-v1", num_envs=3), "steps", 200)
    batch = collector.collect()
    assert batch.obs.shape == (67, 3, 4) and batch.actions.shape == (67, 3)
    assert batch.env_steps == 201 and bool(batch.valid.all())
    # next_obs[t] is obs[t+1] except where the episode ended (then the true final obs).
    continuing = ~batch.done[:-1]
    torch.testing.assert_close(batch.next_obs[:-1][continuing], batch.obs[1:][continuing])
    # CartPole ends by termination (pole fell); the batch edge truncates what still runs.
    assert bool(batch.terminated.any())
    assert bool((batch.truncated[-1] | batch.terminated[-1]).all())
    # log-probs are those of the recorded actions under the collecting policy
    with torch.no_grad():
        logp = collector.policy.distribution(batch.obs).log_prob(batch.actions)
    torch.testing.assert_close(batch.logp, logp)
    torch.testing.assert_close(batch.params, collector.policy.distribution_params(batch.obs))
    assert batch.values is None  # (no value head shares the policy's encoder)


def test_a_value_head_on_the_policys_encoder_is_recorded_from_the_sampling_pass():
    from pgrun.networks.value import EncodedValueNetwork
    from pgrun.training.build import shared_value_head

    plain_collector = make_collector(EnvConfig(id="CartPole-v1", num_envs=3), "steps", 30)
    torch.manual_seed(1)
    plain = plain_collector.collect()
    collector = make_collector(EnvConfig(id="CartPole-v1", num_envs=3), "steps", 30)
    policy = collector.policy
    critic = EncodedValueNetwork(policy.encoder, "orthogonal")
    apart = EncodedValueNetwork(make_policy(4, gym.spaces.Discrete(2), PolicyConfig()).encoder, "orthogonal")
    assert shared_value_head(apart, policy) is None and shared_value_head(None, policy) is None
    collector.value_head = shared_value_head(critic, policy)
    torch.manual_seed(1)
    batch = collector.collect()
    assert torch.equal(batch.actions, plain.actions)  # the same samples as without the head
    with torch.no_grad():
        torch.testing.assert_close(batch.values, critic(batch.obs))
        torch.testing.assert_close(batch.logp, policy.log_prob_of(batch.obs, batch.actions))


def test_time_limit_is_truncation_not_termination():
    env = EnvConfig(id="Pendulum-v1", num_envs=2, max_episode_steps=5)
    batch = make_collector(env, "steps", 20).collect()
    assert not bool(batch.terminated.any())
    assert batch.truncated[:, 0].tolist() == [False, False, False, False, True] * 2
    assert batch.episode_lengths == [5] * 4
    ended = batch.truncated[:-1]
    assert int(ended.sum()) == 2
    # The final observation of a truncated episode is kept for bootstrapping: it is not the reset obs.
    final, reset = batch.next_obs[:-1][ended], batch.obs[1:][ended]
    assert bool((final != reset).any(dim=-1).all())


@pytest.mark.parametrize("episodes", [1, 5, 6])
def test_episodes_mode_returns_complete_episodes_in_fixed_shares(episodes):
    collector = make_collector(EnvConfig(id="CartPole-v1", num_envs=3), "episodes", episodes)
    for _ in range(2):
        batch = collector.collect()
        assert len(batch.episode_returns) == episodes
        per_env = (batch.done & batch.valid).sum(dim=0).tolist()
        assert sorted(per_env, reverse=True) == [episodes // 3 + (i < episodes % 3) for i in range(3)]
        # every valid step belongs to a complete episode: the last valid step of each env closes one
        for i in range(3):
            valid_steps = np.flatnonzero(batch.valid[:, i].numpy())
            if len(valid_steps):
                assert bool(batch.done[valid_steps[-1], i])
                assert valid_steps.tolist() == list(range(len(valid_steps)))
        # episode returns are the sums of their valid rewards (CartPole: 1 per step)
        assert sum(batch.episode_returns) == pytest.approx(batch.rewards[batch.valid].sum().item())
        assert batch.rewards[~batch.valid].abs().sum().item() == 0.0
        # the batch costs the steps of its episodes; the padding after a copy's share is free
        assert batch.env_steps == sum(batch.episode_lengths) == int(batch.valid.sum())
        if episodes < 3:
            assert batch.env_steps < batch.valid.numel()


def test_discrete_observations_are_one_hot(tests_dir):
    env = EnvConfig(id="corridor_env:Corridor-v0", num_envs=2)
    batch = make_collector(env, "episodes", 2).collect()
    assert batch.obs.shape[-1] == 4
    assert bool((batch.obs.sum(-1) == 1).all())
    assert all(
        ret == -length for ret, length in zip(batch.episode_returns, batch.episode_lengths, strict=True)
    )


def test_same_seed_same_batch():
    first = make_collector(EnvConfig(id="Acrobot-v1", num_envs=2), "steps", 64, seed=7).collect()
    second = make_collector(EnvConfig(id="Acrobot-v1", num_envs=2), "steps", 64, seed=7).collect()
    torch.testing.assert_close(first.obs, second.obs)
    torch.testing.assert_close(first.actions, second.actions)


class BufferReusingEnvs(gym.vector.VectorWrapper):
    """Returns the same arrays at every step, overwritten in place (as EnvPool may): the
    collector must keep its own copies, or every stored step becomes the last one."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.buffers = [obs.copy(), np.zeros(self.num_envs), np.zeros(self.num_envs, bool)]
        self.buffers.append(np.zeros(self.num_envs, bool))
        return self.buffers[0], info

    def step(self, actions):
        *arrays, info = self.env.step(actions)
        for buffer, array in zip(self.buffers, arrays, strict=True):
            buffer[...] = array
        return *self.buffers, info


def test_an_env_that_reuses_its_arrays_gives_the_same_batch():
    config = EnvConfig(id="Pendulum-v1", num_envs=2, max_episode_steps=5)
    plain = make_collector(config, "steps", 20, seed=3).collect()
    reusing = make_collector(config, "steps", 20, seed=3, wrap=BufferReusingEnvs).collect()
    for field in ("obs", "next_obs", "rewards", "terminated", "truncated", "actions"):
        assert torch.equal(getattr(reusing, field), getattr(plain, field)), field
    assert len(set(plain.rewards[:, 0].tolist())) == 10  # (the rewards differ from step to step)


@pytest.mark.parametrize("group", ["cartpole", "acrobot", "pendulum", "lunarlander"])
def test_shipped_env_groups_build_with_the_matching_policy(group, tests_dir):
    from omegaconf import OmegaConf

    from pgrun.networks.distributions import Categorical, DiagonalGaussian

    env = EnvConfig(
        **OmegaConf.to_container(OmegaConf.load(tests_dir.parent / "configs" / "env" / f"{group}.yaml"))
    )
    collector = make_collector(env, "steps", 8)
    expected = DiagonalGaussian if group == "pendulum" else Categorical
    assert isinstance(collector.policy.action_distribution, expected)
    assert collector.collect().rewards.shape == (2, env.num_envs)


def test_running_statistics_match_the_whole_sample():
    from pgrun.collection.normalization import RunningMeanStd

    generator = np.random.default_rng(0)
    parts = [generator.normal(2.0, 4.0, size=(n, 3)) for n in (5, 17, 1, 40)]
    statistics = RunningMeanStd(3)
    for part in parts:
        statistics.update(part)
    everything = np.concatenate(parts)
    np.testing.assert_allclose(statistics.mean, everything.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(statistics.var, everything.var(0), rtol=1e-4, atol=1e-4)


def test_normalized_observations_are_standardized_and_evaluation_does_not_update_them():
    env = EnvConfig(id="Pendulum-v1", num_envs=2, normalize_obs=True)
    collector = make_collector(env, "steps", 2000)
    batch = collector.collect()
    assert batch.obs.abs().max() <= collector.preprocessor.clip == 10.0
    late = batch.obs[500:].reshape(-1, 3)  # after the statistics settled
    # raw angular velocity spans [-8, 8]; standardized, every feature has mean ~0 and std ~1
    assert late.mean(0).abs().max() < 0.5 and (late.std(0) - 1).abs().max() < 0.3
    count = collector.preprocessor.statistics.count
    collector.preprocessor(np.zeros((4, 3), dtype=np.float32))  # as the evaluator calls it
    assert collector.preprocessor.statistics.count == count


class RecordingVectorEnv(gym.vector.VectorWrapper):
    """Keeps every raw observation the collector is given, and the true final ones."""

    def __init__(self, env):
        super().__init__(env)
        self.observed, self.successors = [], []

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.observed.append(obs.copy())
        return obs, info

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        successor = obs.copy()
        for i in np.flatnonzero(terminated | truncated):
            successor[i] = info["final_obs"][i]
        self.successors.append(successor)
        self.observed.append(obs.copy())
        return obs, reward, terminated, truncated, info


def test_successor_observations_share_the_normalization_of_the_step_they_follow():
    from pgrun.collection.normalization import RunningMeanStd

    env = EnvConfig(id="Pendulum-v1", num_envs=2, max_episode_steps=7, normalize_obs=True)
    torch.manual_seed(0)
    envs = RecordingVectorEnv(make_vector_env(env, env.num_envs))
    encoder = ObservationPreprocessor(envs.single_observation_space, normalize=True)
    policy = make_policy(encoder.dim, envs.single_action_space, PolicyConfig())
    collector = Collector(envs, policy, encoder, "steps", 40, seed=0)
    batches = [collector.collect(), collector.collect()]
    obs = torch.cat([batch.obs for batch in batches])
    next_obs = torch.cat([batch.next_obs for batch in batches])
    statistics = RunningMeanStd(3)
    for t in range(len(obs)):
        statistics.update(envs.observed[t])  # s_t folds in before it is encoded

        def normalized(raw):
            z = (raw.astype(np.float64) - statistics.mean) / np.sqrt(statistics.var + 1e-8)
            return torch.as_tensor(z.clip(-10, 10), dtype=torch.float32)

        torch.testing.assert_close(obs[t], normalized(envs.observed[t]))
        torch.testing.assert_close(next_obs[t], normalized(envs.successors[t]))


def cartpole_transition():
    """(s, a) -> (s', r, terminated) of a single CartPole-v1, set to s."""
    env = gym.make("CartPole-v1").unwrapped
    env.reset(seed=0)

    def transition(obs: np.ndarray, action: int) -> tuple:
        env.state, env.steps_beyond_terminated = obs.astype(np.float64), None
        next_obs, reward, terminated, _, _ = env.step(int(action))
        return next_obs, reward, terminated

    return transition


@pytest.mark.parametrize(("unit", "size"), [("steps", 400), ("episodes", 6)])
def test_a_native_vector_env_gives_true_transitions_and_its_reset_steps_are_skipped(unit, size):
    """CartPole's own vectorized env resets a copy in the step after its episode ended
    (NEXT_STEP autoreset): that step is no transition, so it must be padding, while every
    valid step is the env's transition from the recorded s_t under the recorded a_t."""
    collector = make_collector(EnvConfig(id="CartPole-v1", num_envs=4, vectorization="native"), unit, size)
    transition = cartpole_transition()
    last_terminated = torch.zeros(4, dtype=torch.bool)
    for _ in range(3):
        batch = collector.collect()
        valid = batch.valid
        for t, i in valid.nonzero().tolist():
            next_obs, reward, terminated = transition(batch.obs[t, i].numpy(), batch.actions[t, i])
            np.testing.assert_allclose(batch.next_obs[t, i].numpy(), next_obs, atol=1e-5)
            assert bool(batch.terminated[t, i]) == terminated and batch.rewards[t, i].item() == reward
        # the step after an episode's end only resets the copy: invalid, closed, no reward
        real_ends = batch.terminated & valid
        assert bool((~valid[1:][real_ends[:-1]]).all())
        if unit == "steps":  # also across the batch edge
            assert bool((~valid[0][last_terminated]).all())
            last_terminated = batch.terminated[-1] & valid[-1]
            assert bool(batch.truncated[~valid].all())  # no padding in steps mode: each a reset step, closed
            assert batch.env_steps == valid.numel() == 4 * 100
        else:
            assert len(batch.episode_returns) == size
            # counted: the episodes' steps and the reset steps before a copy's share was done
            resets = int((batch.truncated & ~valid).sum())
            assert sum(batch.episode_lengths) <= batch.env_steps <= sum(batch.episode_lengths) + resets
            assert batch.env_steps < valid.numel()
        assert batch.rewards[~valid].abs().sum().item() == 0.0
        # episode returns and lengths count valid steps only (CartPole: reward 1 per step)
        assert sum(batch.episode_lengths) <= int(valid.sum())
        assert batch.episode_returns == [float(length) for length in batch.episode_lengths]


def wrapped_collector(wrap, size: int = 40) -> Collector:
    """Two Pendulum copies, each wrapped by `wrap(env)` (a real gymnasium wrapper)."""
    torch.manual_seed(0)
    envs = make_vector_env(EnvConfig(id="Pendulum-v1", num_envs=2), 2, wrap=lambda env, _: wrap(env))
    encoder = ObservationPreprocessor(envs.single_observation_space)
    return Collector(
        envs,
        make_policy(encoder.dim, envs.single_action_space, PolicyConfig()),
        encoder,
        "steps",
        size,
        seed=0,
    )


class NaNAfter(gym.ObservationWrapper):
    """The observations of a copy turn NaN from its `steps`-th step on."""

    def __init__(self, env: gym.Env, steps: int) -> None:
        super().__init__(env)
        self.steps, self.taken = steps, 0

    def step(self, action):
        self.taken += 1
        return super().step(action)

    def observation(self, obs):
        return obs * np.nan if self.taken >= self.steps else obs


def test_a_non_finite_observation_is_the_envs_fault_at_the_step_it_came():
    from pgrun.collection.early_ends import EnvFault

    collector = wrapped_collector(lambda env: NaNAfter(env, steps=5))
    with pytest.raises(EnvFault, match=r"^the env returned a non-finite observation$") as fault:
        collector.collect()
    assert fault.value.env_steps == 8  # 4 healthy calls of 2 copies before it
