"""Returns and reward-to-go against hand-computed episodes and a reference loop."""

import pytest
import scipy.signal
import torch

from pgrun.estimators import discounted_cumsum, normalize, reward_to_go, total_return


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
