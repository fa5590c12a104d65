"""The value loss, clipped as in PPO2 / CleanRL, against hand-computed cases on both sides of the clip."""

import pytest
import torch

from pgrun.algorithms.value_fitting import value_loss

# V_old = 0, clip range c = 0.2: V_clipped = clip(V, -0.2, 0.2); loss = max((V - R)^2, (V_clipped - R)^2)
CASES = [
    # V, R, loss, d loss / dV
    (0.1, 1.0, 0.81, 2 * (0.1 - 1.0)),  # inside the range: both terms equal, the ordinary gradient
    (0.5, 1.0, 0.64, 0.0),  # above the range, target above: the clipped term is larger, no gradient
    (0.5, -1.0, 2.25, 2 * (0.5 + 1.0)),  # above the range, target below: the plain term is larger
    (-0.5, -1.0, 0.64, 0.0),  # below the range, target below: the clipped term, no gradient
    (-0.5, 1.0, 2.25, 2 * (-0.5 - 1.0)),  # below the range, target above: the plain term
]


@pytest.mark.parametrize(("value", "target", "loss", "gradient"), CASES)
def test_clipped_value_loss_is_the_larger_of_the_two_errors(value, target, loss, gradient):
    values = torch.tensor([value], dtype=torch.float64, requires_grad=True)
    got = value_loss(
        values, torch.tensor([target], dtype=torch.float64), torch.zeros(1, dtype=torch.float64), 0.2
    )
    got.backward()
    assert got.item() == pytest.approx(loss)
    assert values.grad.item() == pytest.approx(gradient)


def test_unclipped_value_loss_is_the_mean_squared_error():
    values = torch.tensor([0.5, -2.0, 3.0])
    targets = torch.tensor([1.0, 1.0, 1.0])
    got = value_loss(values, targets, torch.zeros(3), None)
    assert got.item() == pytest.approx((0.25 + 9.0 + 4.0) / 3)
