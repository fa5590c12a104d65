"""The training process keeps freed memory for reuse (pgrun.training.memory): counted in the
page faults of a Nature CNN's training steps, in fresh processes with and without it."""

import subprocess
import sys

import pytest

from pgrun.training.memory import keep_freed_memory

CNN_STEPS = """
import resource, sys, torch
from torch import nn
from pgrun.training.memory import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
torch.set_num_threads(1)
torch.manual_seed(0)
cnn = nn.Sequential(  # the Nature CNN, over the ppo_atari preset's minibatch of 256 frames
    nn.Conv2d(4, 32, 8, 4), nn.ReLU(), nn.Conv2d(32, 64, 4, 2), nn.ReLU(), nn.Conv2d(64, 64, 3, 1),
    nn.ReLU(), nn.Flatten(), nn.Linear(3136, 512),
)
frames = torch.rand(256, 4, 84, 84)
def step():
    cnn(frames).square().mean().backward()
for _ in range(2):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    step()
print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4)
"""


def faults_per_step(mode: str) -> tuple[str, float]:
    command = [sys.executable, "-c", CNN_STEPS, mode]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    applied, faults = result.stdout.split()
    return applied, float(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_a_cnn_step_reuses_freed_memory_instead_of_faulting_pages_in_again():
    applied, kept = faults_per_step("keep")
    _, default = faults_per_step("default")
    assert applied == "True"
    assert default > 5_000  # glibc's defaults: the step's large buffers are mapped and unmapped each time
    assert kept < default / 10  # (0 on an idle machine; a few hundred seen beside other processes)


def test_it_says_whether_it_applied():
    assert keep_freed_memory() is sys.platform.startswith("linux")  # (glibc on the Linux CI)
