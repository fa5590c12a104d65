"""Learning tests: the shipped defaults solve their task within the promised budget."""

import pytest
from hydra import compose, initialize_config_dir

from pgrun.cli import config_dir
from pgrun.config import register_schemas, to_config
from pgrun.train import train


def shipped_config(*overrides: str):
    register_schemas()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return to_config(compose("config", overrides=["log.console=false", *overrides]))


@pytest.mark.slow
def test_rtg_solves_cartpole_within_300k_steps(tmp_path):
    config = shipped_config("algo=rtg", "env=cartpole", "seed=0", "stop_return=475")
    assert config.total_steps >= 300_000 and config.eval.episodes == 10
    summary = train(config, tmp_path)
    assert summary["solved_at_step"] is not None, (
        f"not solved: best eval return {summary['best_eval_return']}"
    )
    assert summary["solved_at_step"] <= 300_000
