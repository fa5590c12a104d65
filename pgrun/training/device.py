"""The device a run's networks live on (config key `device`): which one `auto` means, and a
one-line error for a device this machine does not have; and how they run there (`compile`).

The envs always run on the CPU. The collector hands each observation to the policy on the
device and its actions back to the envs; the batch is assembled on the CPU and moved to the
device once per iteration (Batch.to, through pinned memory for a GPU); the estimator and the
update rule work there. On the CPU every move is a no-op, so CPU runs compute what they
computed before devices existed.
"""

from __future__ import annotations

import torch
from torch import nn

from pgrun.config import ConfigError


def resolve_device(name: str) -> torch.device:
    """torch's device for the config value: auto, cpu, cuda, cuda:N or mps; ConfigError
    (naming what this machine has) for one that it lacks."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        found = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if found == 0:
            built = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA (a CPU build)"
            raise ConfigError(
                f"device={name} is not available: torch {torch.__version__} ({built}) sees no CUDA "
                "device; use device=cpu, or device=auto to take a GPU only where there is one"
            )
        if device.index is not None and device.index >= found:
            names = "cuda:0" if found == 1 else f"cuda:0 to cuda:{found - 1}"
            raise ConfigError(f"device={name} is not available: this machine's CUDA devices are {names}")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={name} is not available: torch {torch.__version__} sees no MPS device")
    return device


def compile_networks(policy: nn.Module, critic: nn.Module | None, device: torch.device) -> list[nn.Module]:
    """torch.compile, in place (nn.Module.compile: parameters and state_dict keys unchanged),
    what does a run's arithmetic: the policy's encoder, and the critic's own encoder (or the
    whole critic, a value MLP) unless it reads the policy's. On a CUDA device in the mode that
    records CUDA graphs ("reduce-overhead"). Returns the modules compiled."""
    modules = [policy.encoder]
    if critic is not None:
        own = getattr(critic, "encoder", critic)
        if own is not policy.encoder:
            modules.append(own)
    mode = "reduce-overhead" if device.type == "cuda" else None
    for module in modules:
        module.compile(mode=mode)
    return modules
