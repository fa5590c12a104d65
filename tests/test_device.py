"""The device switch (config key `device`): what auto means, one line for a device the machine
lacks, networks and batches placed on the configured device (the meta device stands in for a
GPU), and a CPU checkpoint resumed with device=auto."""

import pytest
import torch
from tests_support import StopAt, learning_rows, pgrun, shipped_config

import pgrun as api
from pgrun.batch import Batch
from pgrun.config import ConfigError
from pgrun.training import build
from pgrun.training.device import resolve_device

NO_GPU = not torch.cuda.is_available()


def test_auto_takes_a_gpu_only_where_there_is_one():
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU")
def test_a_gpu_this_machine_lacks_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"^device=cuda:1 is not available: torch .* sees no CUDA device"):
        resolve_device("cuda:1")
    result = pgrun("device=cuda", "total_steps=64", cwd=tmp_path)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("pgrun: error: device=cuda is not available: torch ")
    assert last.endswith("use device=cpu, or device=auto to take a GPU only where there is one")


def test_a_device_pgrun_does_not_know_is_refused(tmp_path):
    result = pgrun("device=tpu", cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "pgrun: error: device=tpu is not allowed: must be auto, cpu, cuda, cuda:N or mps"
    )


@pytest.mark.parametrize("overrides", [["algo=ppo"], ["algo=ppo", "env=pong", "env.atari.screen_size=42"]])
def test_the_networks_are_made_on_the_configured_device(monkeypatch, overrides):
    """Built for the meta device (tensors without storage, standing in for a GPU): every
    parameter of the policy and of V is there, and so are the optimizers' buffers."""
    monkeypatch.setattr(build, "resolve_device", lambda name: torch.device("meta"))
    parts = build.build_parts(shipped_config(*overrides, "env.num_envs=2", "eval.episodes=1"))
    try:
        assert parts.device == torch.device("meta")
        networks = [parts.policy, parts.rule.critic]
        assert all(p.device.type == "meta" for network in networks for p in network.parameters())
        assert parts.collector.device == torch.device("meta")
    finally:
        parts.close()


def test_a_batch_moves_to_the_device_whole():
    steps, copies = 3, 2
    batch = Batch(
        obs=torch.zeros(steps, copies, 4, dtype=torch.uint8), next_obs=torch.zeros(steps, copies, 4),
        actions=torch.zeros(steps, copies, dtype=torch.long), logp=torch.zeros(steps, copies),
        rewards=torch.zeros(steps, copies), terminated=torch.zeros(steps, copies, dtype=torch.bool),
        truncated=torch.ones(steps, copies, dtype=torch.bool),
        valid=torch.ones(steps, copies, dtype=torch.bool),
        episode_returns=[1.0], episode_lengths=[3], features=torch.zeros(steps, copies, 4),
    )  # fmt: skip
    assert batch.to(torch.device("cpu")) is batch  # (on the CPU: nothing moves)
    moved = batch.to(torch.device("meta"))
    tensors = [value for value in vars(moved).values() if isinstance(value, torch.Tensor)]
    assert len(tensors) == 9 and all(tensor.device.type == "meta" for tensor in tensors)
    assert moved.obs.dtype == torch.uint8  # (frames travel as bytes)
    assert (moved.episode_returns, moved.env_steps) == ([1.0], 6)


def test_a_cpu_checkpoint_resumes_with_device_auto(tmp_path):
    common = ["algo=ppo", "env=cartpole", "total_steps=2048", "eval.every=512", "eval.episodes=2"]
    common += ["log.console=false", "log.every=1", "device=cpu"]
    whole = api.train(common, run_dir=tmp_path / "whole")
    api.train(common, run_dir=tmp_path / "split", callbacks=[StopAt(1024)])
    resumed = api.resume(tmp_path / "split", ["device=auto"])
    assert resumed.config.device == "auto"

    if NO_GPU:  # auto is the CPU here: the resumed run is the run that never stopped
        assert learning_rows(tmp_path / "split") == learning_rows(whole.run_dir)
    else:
        assert len(learning_rows(tmp_path / "split")) == len(learning_rows(whole.run_dir))
