"""Every MuJoCo env config runs (a few hundred steps of ppo), cleanly."""

from pathlib import Path

import numpy as np
import pytest
from tests_support import metrics, shipped_config

from pgrun.collection.envs import make_vector_env
from pgrun.collection.evaluator import EVAL_SEED_OFFSET, Evaluator
from pgrun.training.loop import train
from pgrun.training.policy_file import load_policy

MUJOCO_ENVS = {
    "halfcheetah": "HalfCheetah-v5",
    "hopper": "Hopper-v5",
    "walker2d": "Walker2d-v5",
    "ant": "Ant-v5",
    "swimmer": "Swimmer-v5",
    "inverted_pendulum": "InvertedPendulum-v5",
    "inverted_double_pendulum": "InvertedDoublePendulum-v5",
}


def test_every_mujoco_env_has_a_config():
    shipped = {path.stem for path in (Path(__file__).parent.parent / "configs" / "env").glob("*.yaml")}
    assert set(MUJOCO_ENVS) <= shipped


@pytest.mark.parametrize("env", MUJOCO_ENVS)
def test_a_mujoco_env_config_trains_a_few_hundred_steps(tmp_path, monkeypatch, env):
    monkeypatch.chdir(tmp_path)  # where MuJoCo would drop MUJOCO_LOG.TXT
    config = shipped_config(
        "algo=ppo", f"env={env}", "total_steps=400", "algo.batch_size=200", "algo.minibatch_size=50",
        "eval.every=400", "eval.episodes=1", "env.max_episode_steps=100", "log.every=1",
    )  # fmt: skip
    assert config.env.id == MUJOCO_ENVS[env] and config.env.normalize_obs and config.env.normalize_reward
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    summary = train(config, run_dir)
    assert summary["env_steps"] == 400
    assert all(np.isfinite(value) for row in metrics(run_dir) for value in row.values())
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
    # the observation statistics travel with the policy: evaluating the loaded policy with
    # the loaded encoder reproduces the run's final evaluation exactly
    policy, encoder, _ = load_policy(run_dir / "policy.pt")
    assert encoder.statistics is not None and encoder.statistics.count >= 400
    evaluate = Evaluator(
        make_vector_env(config.env, 1), encoder, config.seed + EVAL_SEED_OFFSET, deterministic=True
    )
    assert evaluate(policy)[0] == metrics(run_dir)[-1]["eval/return"] == summary["final_eval_return"]
    encoder.statistics = None  # without them, the same policy acts on other inputs
    assert evaluate(policy)[0] != summary["final_eval_return"]
