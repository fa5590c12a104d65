"""The flat-buffer optimizers against torch's: the same parameters after the same gradients."""

import pytest
import torch

from pgrun.config import OptimizerConfig
from pgrun.optim import make_optimizer
from pgrun.policies import mlp

TORCH_OPTIMIZERS = {
    "adam": lambda params, lr, eps: torch.optim.Adam(params, lr=lr, eps=eps),
    "rmsprop": lambda params, lr, eps: torch.optim.RMSprop(params, lr=lr, alpha=0.99, eps=eps),
    "sgd": lambda params, lr, eps: torch.optim.SGD(params, lr=lr),
}


def twin_networks(seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(seed)
    net = mlp(3, 2, [8, 5], "tanh", "orthogonal", out_gain=1.0)
    twin = mlp(3, 2, [8, 5], "tanh", "orthogonal", out_gain=1.0)
    twin.load_state_dict(net.state_dict())
    return net, twin


def loss_of(net: torch.nn.Module, step: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(step)
    x, y = torch.randn(16, 3, generator=generator), torch.randn(16, 2, generator=generator)
    return (net(x) - y).pow(2).mean() * (step + 1)  # growing gradients, so clipping engages


@pytest.mark.parametrize("name", TORCH_OPTIMIZERS)
@pytest.mark.parametrize("max_grad_norm", [None, 0.3, 50.0])
def test_flat_optimizers_take_torchs_steps(name, max_grad_norm):
    ours, reference = twin_networks()
    lr, eps = 0.01, 1e-5
    optimizer = make_optimizer(ours.parameters(), OptimizerConfig(name=name, lr=lr, eps=eps))
    torch_optimizer = TORCH_OPTIMIZERS[name](list(reference.parameters()), lr, eps)
    for step in range(12):
        optimizer.zero_grad()
        loss_of(ours, step).backward()
        norm = optimizer.clip_grad_norm(max_grad_norm)
        optimizer.step()
        torch_optimizer.zero_grad()
        loss_of(reference, step).backward()
        params = list(reference.parameters())
        torch_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm or float("inf"))
        torch_optimizer.step()
        assert norm == pytest.approx(torch_norm.item(), rel=1e-5)
    for a, b in zip(ours.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert optimizer.steps == 12


def test_backward_passes_accumulate_into_the_flat_gradient():
    net, _ = twin_networks()
    optimizer = make_optimizer(net.parameters(), OptimizerConfig(name="sgd", lr=1.0))
    optimizer.zero_grad()
    loss_of(net, 0).backward()
    loss_of(net, 1).backward()
    expected = torch.autograd.grad(loss_of(net, 0) + loss_of(net, 1), list(net.parameters()))
    for p, g in zip(net.parameters(), expected, strict=True):
        assert p.data_ptr() % 64 == 0 and p.grad.data_ptr() % 64 == 0  # aligned like a tensor of its own
        torch.testing.assert_close(p.grad, g)
    assert optimizer.grad.abs().sum().item() == pytest.approx(sum(g.abs().sum().item() for g in expected))
    before = [p.detach().clone() for p in net.parameters()]
    optimizer.step()  # theta - 1.0 * g, written through the views into the module's own parameters
    for p, old, g in zip(net.parameters(), before, expected, strict=True):
        torch.testing.assert_close(p.detach(), old - g)


@pytest.mark.parametrize("name", TORCH_OPTIMIZERS)
def test_a_restored_optimizer_continues_exactly(name):
    ours, restored_net = twin_networks()
    config = OptimizerConfig(name=name, lr=0.02)
    optimizer = make_optimizer(ours.parameters(), config)
    for step in range(3):
        optimizer.zero_grad()
        loss_of(ours, step).backward()
        optimizer.step()
    state = optimizer.state_dict()
    restored_net.load_state_dict(ours.state_dict())
    restored = make_optimizer(restored_net.parameters(), config)
    restored.load_state_dict(state)
    for net, opt in ((ours, optimizer), (restored_net, restored)):
        for step in range(3, 6):
            opt.zero_grad()
            loss_of(net, step).backward()
            opt.step()
    for a, b in zip(ours.parameters(), restored_net.parameters(), strict=True):
        assert torch.equal(a, b)
