"""Learning tests: with the shipped defaults, each algorithm reaches its floor within the budget."""

import pytest
from tests_support import shipped_config

from pgrun.training.loop import train


@pytest.mark.slow
@pytest.mark.parametrize(
    ("algo", "env", "target", "budget"),
    [
        ("vpg", "cartpole", 475, 300_000),
        ("rtg", "cartpole", 475, 300_000),
        ("baseline", "cartpole", 475, 200_000),
        ("baseline", "acrobot", -100, 300_000),
        ("ppo", "cartpole", 475, 100_000),
        ("trpo", "cartpole", 475, 200_000),
        ("ppo", "pendulum", -250, 300_000),
        ("a2c", "cartpole", 475, 200_000),
    ],
)
def test_shipped_defaults_reach_the_floor(tmp_path, algo, env, target, budget):
    config = shipped_config(
        f"algo={algo}",
        f"env={env}",
        "seed=0",
        f"target_return={target}",
        "stop_at_target=true",
        f"total_steps={budget}",
    )
    assert config.eval.episodes == 10
    summary = train(config, tmp_path)
    reached = summary["target_reached_at_step"]
    assert reached is not None, f"eval return stayed below {target}: best {summary['best_eval_return']}"
    assert reached <= budget
    # the clock to the target leaves out evaluation, which the phase times account for
    phases = summary["seconds_by_phase"]
    training_seconds = summary["target_reached_at_training_seconds"]
    assert training_seconds == pytest.approx(summary["target_reached_at_seconds"] - phases["eval"])
    assert 0 < training_seconds < summary["target_reached_at_seconds"]
