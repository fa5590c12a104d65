"""The flat-buffer optimizers against torch's: the same parameters after the same gradients."""

import pytest
import torch

from pgrun.algorithms.optim import OptimizerDetached, make_optimizer
from pgrun.config import OptimizerConfig
from pgrun.networks.layers import mlp

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
    optimizer = make_optimizer({"net": ours}, OptimizerConfig(name=name, lr=lr, eps=eps))
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
    optimizer = make_optimizer({"net": net}, OptimizerConfig(name="sgd", lr=1.0))
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
    optimizer = make_optimizer({"net": ours}, config)
    for step in range(3):
        optimizer.zero_grad()
        loss_of(ours, step).backward()
        optimizer.step()
    state = optimizer.state_dict()
    restored_net.load_state_dict(ours.state_dict())
    restored = make_optimizer({"net": restored_net}, config)
    restored.load_state_dict(state)
    for net, opt in ((ours, optimizer), (restored_net, restored)):
        for step in range(3, 6):
            opt.zero_grad()
            loss_of(net, step).backward()
            opt.step()
    for a, b in zip(ours.parameters(), restored_net.parameters(), strict=True):
        assert torch.equal(a, b)


def steps_of(net: torch.nn.Module, optimizer, steps: range) -> None:
    for step in steps:
        optimizer.zero_grad()
        loss_of(net, step).backward()
        optimizer.step()


@pytest.mark.parametrize(
    "detach",
    [
        lambda net: net.load_state_dict({k: v.clone() for k, v in net.state_dict().items()}, assign=True),
        lambda net: setattr(net[2].weight, "data", net[2].weight.detach().clone()),  # one parameter
    ],
    ids=["load_state_dict-assign", "one-data-reassigned"],
)
def test_a_parameter_that_left_the_flat_buffer_alone_is_an_error_naming_it(detach):
    """Before the check, the optimizer stepped its own buffer while backward filled fresh
    gradients of fresh tensors: the weights stayed as they were, without a word."""
    net, _ = twin_networks()
    optimizer = make_optimizer({"value": net}, OptimizerConfig(name="adam", lr=0.01))
    steps_of(net, optimizer, range(2))
    detach(net)
    loss_of(net, 2).backward()
    with pytest.raises(
        OptimizerDetached,
        match=r"parameter value\.\d\.(weight|bias) (no longer lives in|was replaced in its module)",
    ):
        optimizer.step()


@pytest.mark.parametrize(
    "move",
    [
        lambda net: net.to(torch.float64).to(torch.float32),  # the round trip of issue #21
        lambda net: torch.nn.utils.vector_to_parameters(
            torch.nn.utils.parameters_to_vector(net.parameters()).detach().clone(), net.parameters()
        ),
    ],
    ids=["to-and-back", "vector_to_parameters"],
)
def test_parameters_that_left_together_are_bound_again_and_keep_learning(move):
    """Before, after `.to(torch.float64).to(torch.float32)` backward filled fresh gradients,
    the optimizer's buffer stayed zero and step() left the weights unchanged: now the buffers
    are rebuilt and the steps are those of a twin that never moved."""
    net, twin = twin_networks()
    config = OptimizerConfig(name="adam", lr=0.01)
    optimizer, twin_optimizer = make_optimizer({"net": net}, config), make_optimizer({"net": twin}, config)
    steps_of(net, optimizer, range(2))
    steps_of(twin, twin_optimizer, range(2))
    move(net)
    before = [p.detach().clone() for p in net.parameters()]
    steps_of(net, optimizer, range(2, 5))
    steps_of(twin, twin_optimizer, range(2, 5))
    for p, old, q in zip(net.parameters(), before, twin.parameters(), strict=True):
        assert not torch.equal(p, old)
        assert torch.equal(p, q)


def test_a_move_of_the_whole_network_rebuilds_the_buffers_with_their_statistics():
    """A network moved to another dtype (here float64: this machine has no other device) as a
    whole takes the same steps as a twin that was never moved, computed in the new dtype."""
    net, twin = twin_networks()
    config = OptimizerConfig(name="adam", lr=0.01)
    optimizer, twin_optimizer = (
        make_optimizer({"net": net}, config),
        make_optimizer({"net": twin}, config),
    )
    steps_of(net, optimizer, range(3))
    steps_of(twin, twin_optimizer, range(3))
    net.double()
    twin_optimizer.rebind()  # (nothing moved: rebuilds in place, the same numbers)

    def loss64(model: torch.nn.Module, step: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(step)
        x, y = torch.randn(16, 3, generator=generator), torch.randn(16, 2, generator=generator)
        dtype = next(model.parameters()).dtype
        return (model(x.to(dtype)) - y.to(dtype)).pow(2).mean() * (step + 1)

    for step in range(3, 6):
        for model, opt in ((net, optimizer), (twin, twin_optimizer)):
            opt.zero_grad()
            loss64(model, step).backward()
            opt.step()
    assert optimizer.flat.dtype == optimizer.m.dtype == torch.float64 and optimizer.steps == 6
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        assert a.dtype == torch.float64
        torch.testing.assert_close(a.float(), b, rtol=1e-4, atol=1e-6)
    before = [p.detach().clone() for p in net.parameters()]
    optimizer.zero_grad()
    loss64(net, 6).backward()
    optimizer.step()
    assert all(not torch.equal(p, old) for p, old in zip(net.parameters(), before, strict=True))


def test_module_zero_grad_between_steps_keeps_the_gradient_backward_computed():
    """module.zero_grad() sets gradients to None and backward makes new ones: they are copied
    back into the flat gradient, so the step is the one torch's optimizer takes."""
    ours, reference = twin_networks()
    optimizer = make_optimizer({"net": ours}, OptimizerConfig(name="sgd", lr=0.1))
    torch_optimizer = torch.optim.SGD(list(reference.parameters()), lr=0.1)
    for step in range(3):
        ours.zero_grad()  # set_to_none=True
        loss_of(ours, step).backward()
        norm = optimizer.clip_grad_norm(None)
        optimizer.step()
        torch_optimizer.zero_grad()
        loss_of(reference, step).backward()
        torch_optimizer.step()
        assert norm > 0
    for a, b in zip(ours.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b)
        assert any(a.grad is view for view in optimizer.grad_views)  # bound to the flat gradient again


def test_a_parameter_backward_did_not_reach_after_module_zero_grad_does_not_move():
    """module.zero_grad() sets every gradient to None; a layer the next loss does not use keeps
    None, and its view must count as zero, not as the previous step's gradient."""
    torch.manual_seed(0)
    used, unused = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    network = torch.nn.ModuleDict({"used": used, "unused": unused})
    optimizer = make_optimizer({"net": network}, OptimizerConfig(name="sgd", lr=1.0))
    optimizer.zero_grad()
    (used(torch.ones(1, 3)) + unused(torch.ones(1, 3))).sum().backward()
    optimizer.step()
    network.zero_grad()
    left = unused.weight.detach().clone()
    used(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    assert torch.equal(unused.weight, left)


def test_a_parameter_tied_between_networks_is_stepped_once():
    torch.manual_seed(0)
    shared = torch.nn.Linear(3, 2)
    first, second = torch.nn.Sequential(shared), torch.nn.Sequential(shared, torch.nn.Linear(2, 1))
    optimizer = make_optimizer({"first": first, "second": second}, OptimizerConfig(name="sgd", lr=0.1))
    assert optimizer.names == ["first.0.weight", "first.0.bias", "second.1.weight", "second.1.bias"]
    optimizer.zero_grad()
    second(torch.randn(4, 3)).pow(2).mean().backward()
    expected = torch.linalg.vector_norm(torch.cat([p.grad.reshape(-1) for p in second.parameters()]))
    assert optimizer.clip_grad_norm(None) == pytest.approx(expected.item())
