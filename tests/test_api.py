"""The Python API (pgrun.train, resume, load, config_of) against the command it mirrors, and the
README's examples run as written."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from tests_support import TINY, learning_rows, pgrun

import pgrun as api
from pgrun.config import ConfigError
from pgrun.training.callbacks import Callback
from pgrun.training.interrupt import Interrupted
from pgrun.training.policy_file import PolicyFileError, read_policy

REPO = Path(__file__).resolve().parent.parent
RUN = ["algo=ppo", "env=cartpole", *TINY, "algo.batch_size=400", "tuned=null"]


@pytest.mark.slow
def test_train_runs_what_the_command_runs(tmp_path):
    """The same overrides through pgrun.train and through `pgrun` give the same numbers, files
    and summary: both run the same session."""
    result = api.train(RUN, run_dir=tmp_path / "api")
    done = pgrun(*RUN, f"hydra.run.dir={tmp_path / 'cli'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert learning_rows(tmp_path / "api") == learning_rows(tmp_path / "cli")
    assert result.run_dir == tmp_path / "api"
    assert result.summary == json.loads((tmp_path / "api" / "summary.json").read_text())
    assert result.final_eval_return == result.metrics()[-1]["eval/return"]
    assert result.summary["env_steps"] == result.config.total_steps == 1200
    for name in ("policy.pt", "run.json", ".hydra/config.yaml", ".hydra/overrides.yaml"):
        assert (tmp_path / "api" / name).is_file(), name
    record = json.loads((tmp_path / "api" / "run.json").read_text())
    assert record["status"] == "finished" and record["choices"]["algo"] == "ppo"


def test_bad_input_is_a_config_error_and_leaves_nothing(tmp_path):
    assert api.ConfigError is ConfigError  # the errors the API raises are pgrun's names too
    with pytest.raises(api.ConfigError, match=r"algo\.clip=-1\.0 is not allowed: must be > 0\.0"):
        api.train([*RUN, "algo.clip=-1"], run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match=r"algo=null is not allowed: choose one of a2c, baseline"):
        api.config_of(["algo=null"])


def test_config_of_composes_as_the_command_does():
    config = api.config_of(["algo=ppo", "env=cartpole", "total_steps=2e5"])
    assert config.total_steps == 200_000  # e-notation made an integer, as on the command line
    assert config.algo.gamma == 0.98 and config.env.vectorization == "native"  # the tuned preset applied
    assert api.config_of(["algo=ppo", "env=cartpole", "tuned=null"]).algo.gamma == 0.99


class StopAfter(Callback):
    """Records what it sees and ends the run after `iterations` iterations."""

    def __init__(self, iterations: int) -> None:
        self.iterations, self.seen, self.started, self.ended = iterations, [], False, False

    def on_start(self, training) -> None:
        self.started = True

    def after_iteration(self, training, scalars) -> None:
        self.seen.append((training.progress.steps, sorted(scalars)))
        if training.progress.iteration >= self.iterations:
            training.should_stop = True

    def on_end(self, training) -> None:
        self.ended = True


@pytest.mark.slow
def test_a_user_callback_sees_every_iteration_and_can_end_the_run(tmp_path):
    callback = StopAfter(iterations=2)
    overrides = [*RUN, "total_steps=4000", "log.every=1000000", "eval.every=800"]
    result = api.train(overrides, run_dir=tmp_path / "run", callbacks=[callback])
    assert callback.started and callback.ended
    assert [steps for steps, _ in callback.seen] == [400, 800]
    assert "train/loss" in callback.seen[0][1] and "eval/return" not in callback.seen[0][1]
    assert (
        "eval/return" in callback.seen[1][1] and "time/sps" in callback.seen[1][1]
    )  # it comes after logging
    assert result.summary["env_steps"] == 800  # ended as a finished run: checkpoint and policy written
    assert (tmp_path / "run" / "checkpoints" / "step_000000000800.pt").is_file()
    assert (tmp_path / "run" / "policy.pt").is_file()


@pytest.mark.slow
def test_resume_continues_the_run(tmp_path):
    """A run stopped at 800 steps and resumed to 1,200 logs what a 1,200-step run logs (with a
    constant learning rate: a linear schedule's horizon is total_steps)."""
    constant = [*RUN, "algo.optim.lr_schedule=constant"]
    first = api.train([*constant, "total_steps=800"], run_dir=tmp_path / "run")
    assert first.summary["env_steps"] == 800
    resumed = api.resume(tmp_path / "run", ["total_steps=1200"])
    assert resumed.summary["env_steps"] == resumed.config.total_steps == 1200
    api.train(constant, run_dir=tmp_path / "whole")  # total_steps=1200 from the start
    assert learning_rows(tmp_path / "run") == learning_rows(tmp_path / "whole")


@pytest.mark.slow
@pytest.mark.parametrize("env", ["cartpole", "pendulum"])
def test_a_loaded_agent_acts_as_its_policy(tmp_path, env):
    result = api.train(
        ["algo=ppo", f"env={env}", *TINY, "algo.batch_size=400", "env.normalize_obs=true"],
        run_dir=tmp_path / "run",
    )
    agent = api.load(result.run_dir)
    saved = read_policy(result.run_dir / "policy.pt")
    envs = gym.make(result.config.env.id)
    obs, _ = envs.reset(seed=3)
    observations = np.stack([obs, *(envs.observation_space.sample() for _ in range(4))])
    with torch.no_grad():
        expected = saved.policy.env_action(saved.policy.mode(saved.preprocessor(observations)))
    np.testing.assert_array_equal(agent.act(observations), expected)  # a batch
    # one observation (a one-row matrix product may round differently from a five-row one)
    np.testing.assert_allclose(agent.act(observations[0]), expected[0], rtol=1e-6, atol=1e-7)
    envs.step(agent.act(obs))  # what the env takes
    sampled = np.stack([agent.act(observations[0], deterministic=False) for _ in range(50)])
    assert len(np.unique(sampled, axis=0)) > 1  # stochastic: not always the mode
    if env == "pendulum":
        assert np.all(np.abs(sampled) <= 2.0)  # clipped to the Box, as the env gets it


def test_load_refuses_what_is_not_a_policy(tmp_path):
    assert api.PolicyFileError is PolicyFileError
    with pytest.raises(PolicyFileError, match=r"holds no policy\.pt and no checkpoint"):
        api.load(tmp_path)
    (tmp_path / "policy.pt").write_bytes(b"not a torch file")
    with pytest.raises(PolicyFileError, match="not a readable pgrun policy file"):
        api.load(tmp_path / "policy.pt")


def readme_python_examples() -> list[str]:
    """The ```python blocks of the README's "Python API" section."""
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


@pytest.mark.slow
def test_the_readme_python_examples_run_as_written(tmp_path):
    examples = readme_python_examples()
    assert len(examples) >= 2
    for example in examples:
        done = subprocess.run(
            [sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"{example}\n{done.stderr[-3000:]}"


class InterruptAt(Callback):
    """Sends the process a SIGINT (Ctrl-C) after the iteration that reaches `steps`."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def after_iteration(self, training, scalars) -> None:
        if training.progress.steps == self.steps:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.slow
def test_ctrl_c_stops_a_run_with_a_checkpoint_and_leaves_ctrl_c_working(tmp_path):
    """From Python the first Ctrl-C stops at the end of the iteration (checkpoint written, as on
    the command line) and raises Interrupted; afterwards Ctrl-C is the caller's again (the
    command ignores further signals on its way out; a notebook kernel must not)."""
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(Interrupted) as stopped:
        api.train([*RUN, "total_steps=4000"], run_dir=tmp_path / "run", callbacks=[InterruptAt(800)])
    assert stopped.value.checkpoint_step == 800 and not stopped.value.immediate
    assert (tmp_path / "run" / "checkpoints" / "step_000000000800.pt").is_file()
    assert signal.getsignal(signal.SIGINT) is handler
    resumed = api.resume(tmp_path / "run", ["total_steps=1200"])
    assert resumed.summary["env_steps"] == 1200 and resumed.run_dir == tmp_path / "run"


def test_config_of_works_inside_another_hydra_application(tmp_path):
    """A user's own Hydra app (initialize/compose, or @hydra.main) keeps its global state."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    (tmp_path / "mine.yaml").write_text("answer: 42\n")
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        before = GlobalHydra.instance().hydra
        assert api.config_of(["algo=trpo"]).algo.max_kl == 0.01
        assert GlobalHydra.instance().hydra is before
        assert compose("mine").answer == 42


IGNORED = {
    "algo=ppo algo.kl_coef=2": "algo.kl_coef=2.0 does nothing with algo.variant=clip",
    "algo=ppo_penalty algo.clip=0.3": "algo.clip=0.3 does nothing with algo.variant=penalty",
    "algo=npg algo.backtrack_iters=3": "algo.backtrack_iters=3 does nothing with algo.line_search=false",
    "algo=ppo algo.value.coef=0.3": "algo.value.coef=0.3 does nothing with algo.value.share_encoder=false",
    "algo=ppo tuned=null algo.value.share_encoder=true algo.value.lr=0.01": (
        "algo.value.lr=0.01 does nothing with algo.value.share_encoder=true"
    ),
    "algo=ppo tuned=null algo.value.share_encoder=true algo.value.max_grad_norm=1": (
        "algo.value.max_grad_norm=1.0 does nothing with algo.value.share_encoder=true"
    ),
    "algo=vpg algo.optim.name=sgd algo.optim.eps=0.1": (
        "algo.optim.eps=0.1 does nothing with algo.optim.name=sgd"
    ),
    "env.clip_obs=5": "env.clip_obs=5.0 does nothing with env.normalize_obs=false",
    "env=pendulum env.clip_reward=1": "env.clip_reward=1.0 does nothing with env.normalize_reward=false",
}


@pytest.mark.parametrize("overrides", IGNORED)
def test_a_key_the_chosen_variant_ignores_is_refused_unless_left_at_its_default(overrides):
    with pytest.raises(ConfigError) as refused:
        api.config_of(overrides.split())
    assert str(refused.value).startswith(IGNORED[overrides]) and str(refused.value).endswith("leave it out")
    # the variant that uses the key takes it; left at its default, the key passes everywhere
    uses_it = {
        "algo=ppo algo.kl_coef=2": "algo=ppo_penalty algo.kl_coef=2",
        "algo=ppo_penalty algo.clip=0.3": "algo=ppo algo.clip=0.3",
        "algo=npg algo.backtrack_iters=3": "algo=trpo algo.backtrack_iters=3",
        "env.clip_obs=5": "env.normalize_obs=true env.clip_obs=5",
    }
    if overrides in uses_it:
        api.config_of(uses_it[overrides].split())
    api.config_of(overrides.split()[:-1])


def test_a_key_a_tuned_preset_set_that_the_variant_ignores_names_the_preset():
    with pytest.raises(ConfigError) as refused:
        api.config_of(["algo=ppo", "env=cartpole", "algo.value.share_encoder=true"])
    assert str(refused.value) == (
        "algo.value.lr=0.002 does nothing with algo.value.share_encoder=true: algo.optim steps the shared "
        "network; it comes from the tuned preset tuned/ppo_cartpole.yaml: tuned=null leaves it out"
    )
