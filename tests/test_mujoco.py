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
        make_vector_env(config.env, 1), encoder, config.seed + EVAL_SEED_OFFSET, True, fresh_starts=True
    )
    last = sum("eval/return" in row for row in metrics(run_dir)) - 1  # the final evaluation's number
    assert evaluate(policy, last)[0] == metrics(run_dir)[-1]["eval/return"] == summary["final_eval_return"]
    encoder.statistics = None  # without them, the same policy acts on other inputs
    assert evaluate(policy, last)[0] != summary["final_eval_return"]


def agent_in_view(env_id: str, wrap) -> bool:
    """Whether the agent shows in a frame taken, as in a video, after the first frame of the
    episode and once the agent has travelled 30 m along the x axis: the frame differs from
    the same view with every body but the world (floor) hidden."""
    import gymnasium as gym
    import mujoco

    from pgrun.tracking.video import prepare_rendering

    prepare_rendering(env_id)
    env = wrap(gym.make(env_id, render_mode="rgb_array"))
    env.reset(seed=0)
    env.render()  # the episode's first frame places the camera
    model, data = env.unwrapped.model, env.unwrapped.data
    slides = model.jnt_range[0, 1] - model.jnt_range[0, 0] if model.jnt_limited[0] else np.inf
    data.qpos[0] += min(30.0, 0.9 * slides / 2)  # the pendulums' carts stay on their rails
    mujoco.mj_forward(model, data)
    frame = env.render()
    model.geom_rgba[model.geom_bodyid != 0, 3] = 0.0  # the agent hidden: the empty scene
    empty = env.render()
    env.close()
    return bool((np.abs(frame.astype(int) - empty.astype(int)).sum(-1) > 30).mean() > 0.002)


@pytest.mark.parametrize("env", MUJOCO_ENVS)
def test_videos_follow_the_agent(tmp_path, monkeypatch, env):
    from pgrun.tracking.video import recording

    monkeypatch.chdir(tmp_path)
    # as pgrun-eval --video and eval.video wrap each copy they record
    assert agent_in_view(MUJOCO_ENVS[env], lambda env: recording(tmp_path, lambda index: "clip")(env, 0))
    if env in ("halfcheetah", "ant", "hopper"):  # gymnasium's own camera loses it, trackbodyid or not
        assert not agent_in_view(MUJOCO_ENVS[env], lambda env: env)
