"""Returns and reward-to-go against hand-computed episodes and a reference loop."""

from dataclasses import replace

import pytest
import scipy.signal
import torch

from pgrun.estimation.functional import (
    discounted_cumsum,
    effective_sample_size,
    episode_cumsum,
    gae,
    normalize,
    per_decision_weights,
    reward_to_go,
    total_return,
)


def column(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).unsqueeze(1)


def flags(length: int, *closing: int) -> torch.Tensor:
    done = torch.zeros(length, 1, dtype=torch.bool)
    done[list(closing)] = True
    return done


def reference_cumsum(x: torch.Tensor, discount: torch.Tensor) -> torch.Tensor:
    y, running = torch.zeros_like(x), torch.zeros_like(x[0])
    for t in reversed(range(len(x))):
        running = x[t] + discount[t] * running
        y[t] = running
    return y


@pytest.mark.parametrize("length", [1, 2, 3, 7, 64, 100])
def test_discounted_cumsum_matches_reference_loop(length):
    generator = torch.Generator().manual_seed(length)
    x = torch.randn(length, 5, generator=generator, dtype=torch.float64)
    discount = torch.rand(length, 5, generator=generator, dtype=torch.float64)
    discount[torch.rand(length, 5, generator=generator) < 0.2] = 0.0
    torch.testing.assert_close(discounted_cumsum(x, discount), reference_cumsum(x, discount))


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.99, 1.0])
def test_reward_to_go_of_one_episode_matches_lfilter(gamma):
    rewards = torch.randn(40, 1, dtype=torch.float64)
    expected = scipy.signal.lfilter([1], [1, -gamma], rewards.numpy()[::-1], axis=0)[::-1].copy()
    torch.testing.assert_close(reward_to_go(rewards, flags(40, 39), gamma), torch.as_tensor(expected))


@pytest.mark.parametrize(
    ("gamma", "expected"),
    [
        # episode 1: r = 1, 2, 3 (terminated); episode 2: r = 4, 5 (truncated at the time limit)
        (0.0, [1, 2, 3, 4, 5]),
        (0.5, [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3, 4 + 0.5 * 5, 5]),
        (1.0, [6, 5, 3, 9, 5]),
    ],
)
def test_reward_to_go_hand_computed_two_episodes(gamma, expected):
    rewards = column(1, 2, 3, 4, 5)
    done = flags(5, 2, 4)  # terminated after step 2, truncated after step 4: both close the sum
    torch.testing.assert_close(reward_to_go(rewards, done, gamma), column(*expected))


@pytest.mark.parametrize(
    ("gamma", "expected"),
    [
        (0.0, [1, 1, 1, 4, 4]),
        (0.5, [2.75, 2.75, 2.75, 6.5, 6.5]),
        (1.0, [6, 6, 6, 9, 9]),
    ],
)
def test_total_return_hand_computed_two_episodes(gamma, expected):
    rewards = column(1, 2, 3, 4, 5)
    torch.testing.assert_close(total_return(rewards, flags(5, 2, 4), gamma), column(*expected))


def test_estimators_keep_env_columns_apart():
    # Two env copies with different episode boundaries, batch edge closing both.
    rewards = torch.tensor([[1.0, 10.0], [1.0, 10.0], [1.0, 10.0], [1.0, 10.0]])
    done = torch.tensor([[False, True], [True, False], [False, False], [True, True]])
    torch.testing.assert_close(
        reward_to_go(rewards, done, 1.0), torch.tensor([[2.0, 10.0], [1.0, 30.0], [2.0, 20.0], [1.0, 10.0]])
    )
    torch.testing.assert_close(
        total_return(rewards, done, 1.0), torch.tensor([[2.0, 10.0], [2.0, 30.0], [2.0, 30.0], [2.0, 30.0]])
    )


def test_truncated_segment_sums_only_observed_rewards():
    # A segment cut by the batch edge (truncated, not terminated) contributes only what was observed.
    rewards, done = column(1, 1, 1), flags(3, 2)
    torch.testing.assert_close(reward_to_go(rewards, done, 1.0), column(3, 2, 1))


def test_normalize_uses_only_valid_steps():
    weights = torch.tensor([[1.0, 100.0], [3.0, -50.0]])
    valid = torch.tensor([[True, False], [True, False]])
    normalized = normalize(weights, valid)
    assert normalized[valid].mean().item() == pytest.approx(0.0, abs=1e-6)
    assert normalized[valid].std().item() == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(normalized[valid], torch.tensor([-1 / 2**0.5, 1 / 2**0.5]))


def reference_gae(rewards, values, next_values, terminated, done, gamma, lam):
    """The step-by-step recursion, one step at a time."""
    advantages, running = torch.zeros_like(rewards), torch.zeros_like(rewards[0])
    for t in reversed(range(len(rewards))):
        delta = rewards[t] + gamma * (~terminated[t]).double() * next_values[t] - values[t]
        running = delta + gamma * lam * (~done[t]).double() * running
        advantages[t] = running
    return advantages


def random_segments(seed: int, length: int = 50, envs: int = 4):
    generator = torch.Generator().manual_seed(seed)
    rewards, values, next_values = torch.randn(3, length, envs, generator=generator, dtype=torch.float64)
    terminated = torch.rand(length, envs, generator=generator) < 0.05
    truncated = (torch.rand(length, envs, generator=generator) < 0.05) & ~terminated
    truncated[-1] |= ~terminated[-1]
    done = terminated | truncated
    # as in a real batch: within an episode, s_{t+1} is the next step's observation
    next_values[:-1] = torch.where(done[:-1], next_values[:-1], values[1:])
    return rewards, values, next_values, terminated, done


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.95, 1.0])
def test_gae_matches_the_step_by_step_recursion(lam):
    rewards, values, next_values, terminated, done = random_segments(seed=int(lam * 100))
    advantages, targets = gae(rewards, values, next_values, terminated, done, 0.99, lam)
    expected = reference_gae(rewards, values, next_values, terminated, done, 0.99, lam)
    torch.testing.assert_close(advantages, expected)
    torch.testing.assert_close(targets, expected + values)


def test_gae_lambda_0_is_the_td_residual_and_lambda_1_is_reward_to_go_minus_v():
    rewards, values, next_values, terminated, done = random_segments(seed=9)
    gamma = 0.9
    td, _ = gae(rewards, values, next_values, terminated, done, gamma, 0.0)
    torch.testing.assert_close(td, rewards + gamma * (~terminated).double() * next_values - values)
    # lambda = 1: reward-to-go that bootstraps V(s_end+1) where the episode was truncated
    bootstrapped = rewards + gamma * (done & ~terminated).double() * next_values
    full, _ = gae(rewards, values, next_values, terminated, done, gamma, 1.0)
    torch.testing.assert_close(full, reward_to_go(bootstrapped, done, gamma) - values)


def test_gae_hand_computed_with_truncation_inside_the_batch():
    # Episode A: steps 0-1, truncated after step 1 (time limit): bootstrap V(s_2^final) = 2.
    # Episode B: steps 2-3, terminated after step 3: no bootstrap.
    rewards = column(1, 1, 1, 1)
    values = column(0.5, 0.5, 0.5, 0.5)
    next_values = column(0.5, 2.0, 0.5, 9.0)  # 9.0 follows a terminal step and must be ignored
    terminated, done = flags(4, 3), flags(4, 1, 3)
    gamma, lam = 0.5, 0.5
    d0, d1 = 1 + 0.5 * 0.5 - 0.5, 1 + 0.5 * 2.0 - 0.5  # 0.75, 1.5
    d2, d3 = 1 + 0.5 * 0.5 - 0.5, 1 - 0.5  # 0.75, 0.5
    expected = column(d0 + 0.25 * d1, d1, d2 + 0.25 * d3, d3)
    advantages, targets = gae(rewards, values, next_values, terminated, done, gamma, lam)
    torch.testing.assert_close(advantages, expected)
    torch.testing.assert_close(targets, expected + 0.5)


def test_episode_cumsum_restarts_at_each_episode():
    x = torch.tensor([[1.0], [2.0], [3.0], [4.0], [5.0]])
    torch.testing.assert_close(
        episode_cumsum(x, flags(5, 1, 4)), torch.tensor([[1.0], [3.0], [3.0], [7.0], [12.0]])
    )


def test_per_decision_weights_are_products_within_episodes():
    rho = torch.tensor([[2.0], [0.5], [3.0], [0.0], [4.0]], dtype=torch.float64)
    w = per_decision_weights(rho, flags(5, 1, 4))
    torch.testing.assert_close(w, torch.tensor([[2.0], [1.0], [3.0], [0.0], [0.0]], dtype=torch.float64))
    assert effective_sample_size(torch.tensor([1.0, 1.0, 1.0, 1.0])) == pytest.approx(4.0)
    assert effective_sample_size(torch.tensor([1.0, 0.0, 0.0, 0.0])) == pytest.approx(1.0)


def lambda_return_advantages(rewards, values, next_values, terminated, done, gamma, lam):
    """The forward view of GAE (Sutton & Barto, ch. 12): A_t = G_t^lambda - V(s_t), with
    G_t^lambda = (1 - lam) sum_{n=1}^{L-1} lam^(n-1) G_t^(n) + lam^(L-1) G_t^(L) over the L steps
    left in t's segment, and the n-step returns G_t^(n) = sum_{k<n} gamma^k r_t+k + gamma^n V(s_t+n),
    where V after a terminal step is 0. Written from the definition, one step and one n at a time."""
    steps, envs = rewards.shape
    advantages = torch.zeros_like(rewards)
    for i in range(envs):
        for t in range(steps):
            end = next(e for e in range(t, steps) if done[e, i])
            length = end - t + 1

            def n_step(n, t=t, i=i):
                last = t + n - 1
                bootstrap = 0.0 if terminated[last, i] else next_values[last, i]
                return sum(gamma**k * rewards[t + k, i] for k in range(n)) + gamma**n * bootstrap

            weights = [(1 - lam) * lam ** (n - 1) for n in range(1, length)] + [lam ** (length - 1)]
            g_lambda = sum(w * n_step(n) for n, w in enumerate(weights, start=1))
            advantages[t, i] = g_lambda - values[t, i]
    return advantages


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.95, 1.0])
def test_gae_equals_the_lambda_return_minus_v_with_termination_and_truncation_mixed(lam):
    rewards, values, next_values, terminated, done = random_segments(seed=21, length=12, envs=3)
    terminated[3, 0], done[3, 0] = True, True  # an episode that ended
    done[7, 1] = True  # a time limit inside the batch (truncated, bootstraps)
    advantages, targets = gae(rewards, values, next_values, terminated, done, 0.9, lam)
    expected = lambda_return_advantages(rewards, values, next_values, terminated, done, 0.9, lam)
    torch.testing.assert_close(advantages, expected)
    torch.testing.assert_close(targets, expected + values)


class CountingCritic(torch.nn.Module):
    """V(s) = w . s over byte observations [..., dim], counting the observations it reads."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.linspace(-1.0, 1.0, dim))
        self.reads = 0

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        self.reads += obs[..., 0].numel()
        return obs.float() @ self.w


def test_byte_observations_are_read_once_and_give_the_values_of_two_readings():
    """Stored bytes (images) are the same in next_obs[t] and obs[t+1] while an episode goes on:
    V(s_{t+1}) is then the next step's V(s_t); at an episode's end and the batch's last step,
    where s_{t+1} is not the next s_t, the critic reads next_obs."""
    from pgrun.batch import Batch
    from pgrun.estimation.estimators import state_values

    steps, copies, dim = 6, 2, 5
    generator = torch.Generator().manual_seed(0)
    states = torch.randint(0, 256, (steps + 1, copies, dim), dtype=torch.uint8, generator=generator)
    obs, next_obs = states[:-1].clone(), states[1:].clone()
    terminated = torch.zeros(steps, copies, dtype=torch.bool)
    terminated[2, 0] = True  # copy 0's episode ends at t=2: s_3 starts the next one
    next_obs[2, 0] = torch.randint(0, 256, (dim,), dtype=torch.uint8, generator=generator)
    truncated = torch.zeros(steps, copies, dtype=torch.bool)
    truncated[-1] = True
    batch = Batch(
        obs=obs, actions=torch.zeros(steps, copies, dtype=torch.long), logp=torch.zeros(steps, copies),
        rewards=torch.zeros(steps, copies), next_obs=next_obs, terminated=terminated, truncated=truncated,
        valid=torch.ones(steps, copies, dtype=torch.bool), episode_returns=[], episode_lengths=[],
    )  # fmt: skip
    critic = CountingCritic(dim)
    values, next_values = state_values(batch, critic)
    assert critic.reads == steps * copies + 3  # the batch once, then the three segment ends
    assert torch.allclose(values, critic(obs)) and torch.allclose(next_values, critic(next_obs))
    # V(s_t) the collection recorded (a critic sharing the policy's encoder) are taken as they are
    critic.reads = 0
    recorded = torch.randn(steps, copies, generator=generator)
    values, next_values = state_values(replace(batch, values=recorded), critic)
    assert critic.reads == 3 and torch.equal(values, recorded)
    assert torch.equal(next_values[:2, 0], recorded[1:3, 0])
    assert torch.equal(next_values[-1], critic(next_obs[-1]))
    # floats are read twice (normalized observations may differ between next_obs[t] and obs[t+1])
    critic.reads = 0
    state_values(replace(batch, obs=obs.float(), next_obs=next_obs.float()), critic)
    assert critic.reads == 2 * steps * copies
