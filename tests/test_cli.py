"""The `pgrun` command, run for real: runs, logs, artifacts, errors."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
from tests_support import (
    EPISODE_ALGOS,
    EPISODE_BATCHES,
    STEP_BATCHES,
    TINY,
    metrics,
    pgrun,
    shipped_config,
    tiny,
)

from pgrun.training.policy_file import load_policy

SCALARS = {
    "charts/episodic_return",
    "charts/episodic_length",
    "eval/return",
    "train/loss",
    "train/entropy",
    "train/approx_kl",
    "train/grad_norm",
    "train/lr",
    "time/sps",
    "time/env",
    "time/collect",
    "time/update",
    "time/eval",
}


def only_run_dir(cwd: Path) -> Path:
    runs = [path.parent for path in cwd.glob("outputs/*/*/.hydra")]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.slow
@pytest.mark.parametrize("env", ["cartpole", "pendulum"])
@pytest.mark.parametrize("algo", ["vpg", "baseline"])
def test_cli_trains_and_logs_to_tensorboard(tmp_path, algo, env):
    result = pgrun(*tiny(algo), f"env={env}", "seed=3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = only_run_dir(tmp_path)
    env_id = {"cartpole": "CartPole-v1", "pendulum": "Pendulum-v1"}[env]
    assert re.fullmatch(rf"\d\d-\d\d-\d\d_{algo}_{env_id}_seed3", run_dir.name)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", run_dir.parent.name)

    events = EventAccumulator(str(run_dir))
    events.Reload()
    assert set(events.Tags()["scalars"]) >= SCALARS
    eval_points = events.Scalars("eval/return")
    rows = metrics(run_dir)
    steps = [row["step"] for row in rows]
    if algo == "baseline":  # batches of 400 steps
        assert steps == [400, 800, 1200]
        assert [point.step for point in eval_points] == [800, 1200]
    else:  # batches of 4 complete episodes: every iteration logged, evaluated past 600 and at the end
        assert steps == sorted(steps) and steps[-1] >= 1200 and len(steps) >= 2
        assert [point.step for point in eval_points] == [row["step"] for row in rows if "eval/return" in row]
        assert eval_points[-1].step == steps[-1]
    hparams = HParamsPluginData.FromString(
        events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    ).session_start_info.hparams
    assert hparams["algorithm"].string_value == algo and hparams["env.id"].string_value == env_id
    assert rows[-1]["eval/return"] == pytest.approx(eval_points[-1].value)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env_steps"] == steps[-1] and summary["final_eval_return"] == rows[-1]["eval/return"]
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    # where the time went: env stepping is part of collecting; the phases fit in the run's time
    phases = summary["seconds_by_phase"]
    assert 0 < phases["env"] < phases["collect"] and phases["update"] > 0 and phases["eval"] > 0
    assert phases["collect"] + phases["update"] + phases["eval"] <= summary["seconds"]
    assert rows[-1]["time/collect"] == pytest.approx(phases["collect"])

    payload = torch.load(run_dir / "policy.pt", weights_only=True)
    assert payload["config"]["algo"]["estimator"] == {"vpg": "total_return", "baseline": "gae"}[algo]
    assert ("value_state_dict" in payload) == (algo == "baseline")
    policy, _, _ = load_policy(run_dir / "policy.pt")
    for name, tensor in policy.state_dict().items():
        torch.testing.assert_close(tensor, payload["state_dict"][name])


@pytest.mark.slow
def test_observation_statistics_are_saved_with_the_policy(tmp_path):
    run_dir = tmp_path / "run"
    result = pgrun(
        *tiny("ppo"), "env=pendulum", "env.normalize_obs=true", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    payload = torch.load(run_dir / "policy.pt", weights_only=True)
    assert payload["obs_statistics"]["count"] >= 1200
    assert "value_state_dict" in payload
    _, encoder, _ = load_policy(run_dir / "policy.pt")
    torch.testing.assert_close(torch.as_tensor(encoder.statistics.mean), payload["obs_statistics"]["mean"])
    obs = np.array([[1.0, 0.0, 0.5]], dtype=np.float32)
    mean, var = payload["obs_statistics"]["mean"], payload["obs_statistics"]["var"]
    expected = (torch.as_tensor(obs).double() - mean) / torch.sqrt(var + 1e-8)
    torch.testing.assert_close(encoder(obs), expected.float())


@pytest.mark.slow
def test_same_seed_gives_identical_returns(tmp_path):
    returns = []
    for name, seed in [("a", 1), ("b", 1), ("c", 2)]:
        run_dir = tmp_path / name
        result = pgrun(*tiny("rtg"), f"seed={seed}", f"hydra.run.dir={run_dir}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        returns.append(
            [(row.get("charts/episodic_return"), row.get("eval/return")) for row in metrics(run_dir)]
        )
    assert returns[0] == returns[1]
    assert returns[0] != returns[2]


def test_console_line_leaves_out_a_return_no_episode_produced(tmp_path, capsys):
    from pgrun.tracking.logger import Logger

    logger = Logger(tmp_path, {}, total_steps=100, console=True, tensorboard=False)
    logger.iteration(1, 50, {"charts/episodic_return": float("nan"), "time/sps": 1234.0})
    logger.iteration(2, 100, {"charts/episodic_return": 21.5, "time/sps": 1234.0})
    logger.close()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("iter ")]
    assert lines == [
        "iter    1 | steps        50 | steps/s 1,234",
        "iter    2 | steps       100 | return 21.5 | steps/s 1,234",
    ]


@pytest.mark.slow
def test_console_says_where_the_run_goes_which_preset_applied_and_how_it_ended(tmp_path):
    result = pgrun(
        "algo=ppo", "env=cartpole", "total_steps=2048", "eval.every=1024", "eval.episodes=2",
        "log.every=512", "hydra.run.dir=run", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    run_dir = tmp_path / "run"
    preset = [line for line in lines if "tuned preset" in line]
    assert len(preset) == 1 and "tuned/ppo_cartpole.yaml applied (14 keys: env.num_envs," in preset[0]
    assert "algo.optim.lr_schedule" in preset[0]  # keys from the whole file, nested ones by their dots
    assert f"pgrun: ppo on CartPole-v1, seed 0, 2,048 env steps -> {run_dir}" in lines
    iterations = [line for line in lines if line.startswith("iter ")]
    assert len(iterations) == 4
    throughput = re.search(r"steps/s ([\d,]+)$", iterations[-1])
    assert throughput and float(throughput[1].replace(",", "")) == round(metrics(run_dir)[-1]["time/sps"])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert re.fullmatch(
        rf"pgrun: done: final eval {summary['final_eval_return']:,.1f}, "
        rf"best {summary['best_eval_return']:,.1f}, 2,048 env steps in [\d.]+ s -> {re.escape(str(run_dir))}",
        lines[-1],
    )


def test_no_preset_line_where_none_applies(tmp_path):
    result = pgrun(*tiny("vpg"), "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 0 and "tuned preset" not in result.stderr, result.stderr


@pytest.mark.parametrize("null", ["tuned=null", "tuned=None"])
def test_tuned_null_leaves_the_preset_out(null):
    assert shipped_config("algo=ppo", "env=cartpole").algo.batch_size == 256  # the preset's
    assert shipped_config("algo=ppo", "env=cartpole", null).algo.batch_size == 2048  # ppo's own


def corridor_package(root: Path) -> Path:
    """A package `my_pkg.envs` (dotted, as the README writes it) holding the tests' Corridor
    env: importing it registers Corridor-v0, and the class can be named directly."""
    package = root / "my_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "envs.py").write_text((Path(__file__).parent / "corridor_env.py").read_text())
    return root


README_ENV_FORMS = ["my_pkg.envs:Corridor-v0", "my_pkg.envs:Corridor"]


def test_readme_lists_the_custom_env_forms_tested_here():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for form in README_ENV_FORMS:
        assert f"env.id={form} " in readme


@pytest.mark.slow
@pytest.mark.parametrize("found_by", ["PYTHONPATH", "current directory"])
@pytest.mark.parametrize("vectorization", ["sync", "async"])
@pytest.mark.parametrize("env_id", README_ENV_FORMS)
def test_custom_env_in_a_dotted_module(tmp_path, env_id, vectorization, found_by):
    """Each README form of env.id, with the module found on PYTHONPATH or in the directory
    pgrun runs in, in the main process and in async workers."""
    if found_by == "PYTHONPATH":
        packages, cwd = corridor_package(tmp_path / "packages"), tmp_path / "work"
        cwd.mkdir()
        extra_env = {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(packages), os.environ.get("PYTHONPATH")]))
        }
    else:
        cwd, extra_env = corridor_package(tmp_path), {}
    result = pgrun(
        f"env.id={env_id}", f"env.vectorization={vectorization}", "env.num_envs=2", *tiny("rtg"),
        "hydra.run.dir=run", cwd=cwd, extra_env=extra_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert metrics(cwd / "run")[-1]["eval/return"] <= -3  # at least three steps to the end of the corridor


BAD_INPUTS = {
    "algo.optim.lr=abc": "algo.optim.lr",
    "algo.optim.lr=-0.1": "algo.optim.lr=-0.1",
    "algo.optim.name=adamw": "algo.optim.name=adamw",
    "algo.gamma=1.5": "algo.gamma=1.5",
    "algo=nope": "algo=nope",
    "env=nope": "env=nope",
    "env.id=NoSuchEnv-v0": "env.id=NoSuchEnv-v0 ",
    "algo.lrr=0.1": "algo.lrr",
    "+algo.lrr=0.1": "algo.lrr",
    "env.num_envs=0": "env.num_envs=0",
    "algo.batch_unit=days": "algo.batch_unit=days",
    "algo=ppo_penalty algo.target_kl=null": "algo.target_kl=null",
    "algo=trpo algo.backtrack_coef=1.5": "algo.backtrack_coef=1.5",
    "algo=is algo.weight_clip=[1.2,0.8]": "algo.weight_clip=[1.2, 0.8]",
    "algo=rtg algo.batch_unit=steps": "algo.batch_unit=steps",
    "algo=vpg algo.estimator=gae": "algo.estimator=gae",
    "algo=ppo algo.batch_size=2000": "algo.batch_size=2000 is not allowed: must be at most total_steps=1200",
    "algo=vpg algo.batch_size=2 env.num_envs=4": "env.num_envs=4 is not allowed: must be at most algo.batch",
    "seed=4294967296": "seed=4294967296",
    "device=cuda": "device=cuda ",
    "env.vectorization=threads": "env.vectorization=threads",
    "env.id=Acrobot-v1 env.vectorization=native": "Acrobot-v1 has no native vectorized implementation",
    "algo=ppo algo.kl_coef=2": "algo.kl_coef=2.0 does nothing with algo.variant=clip",
    "algo=npg algo.backtrack_coef=0.5": "algo.backtrack_coef=0.5 does nothing with algo.line_search=false",
    "algo=a2c algo.value_coef=0.3": "algo.value_coef is not a known key: it is called algo.value.coef now",
    "algo=rtg algo.minibatch_size=3": "algo.minibatch_size is not a known key: it is called algo.chunk_size",
    "algo=a2c +algo.value_coef=0.3": "algo.value_coef is not a known key of pgrun's config: it is called",
    # renamed only where today's name is a key of the chosen algorithm
    "algo=vpg algo.value_coef=0.3": "algo.value_coef is not a known key: known keys are",
    "algo=a2c algo.minibatch_size=3": "algo.minibatch_size is not a known key: known keys are",
    # a sweep's syntax without -m is Hydra's to word
    "algo=ppo,a2c": "Ambiguous value for argument 'algo=ppo,a2c'",
}


@pytest.mark.parametrize("override", BAD_INPUTS)
def test_bad_input_gives_one_line_and_leaves_nothing(tmp_path, override):
    result = pgrun(*TINY, *STEP_BATCHES, *override.split(), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pgrun: error: ")
    assert BAD_INPUTS[override] in lines[0]
    assert re.search(
        r"(must be|one of|not a known key|could not be converted|not a registered|does nothing|available"
        r"|Ambiguous)",
        lines[0],
    )
    assert not list(tmp_path.glob("outputs/*/*")), "a failed start left a run directory behind"


def test_a_key_the_algorithm_does_not_use_is_refused_with_the_keys_it_has(tmp_path):
    result = pgrun("algo=trpo", "algo.lr=0.1", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "pgrun: error: algo.lr is not a known key: known keys are estimator, gamma, normalize_advantages, "
        "batch_unit, batch_size, gae_lambda, value, max_kl, line_search, cg_iters, cg_damping, "
        "backtrack_iters, backtrack_coef"
    ]
    assert not list(tmp_path.glob("outputs/*/*"))


@pytest.mark.slow
def test_logging_every_n_steps_keeps_the_episodes_of_the_iterations_between(tmp_path):
    # batches of 40 steps; logged every 200 steps (and at every evaluation), or every iteration
    logged = {}
    for every in [200, 1]:
        run_dir = tmp_path / str(every)
        result = pgrun(
            "algo=baseline", "algo.batch_size=40", "total_steps=1000", "eval.every=600", "eval.episodes=2",
            f"log.every={every}", "log.console=false", f"hydra.run.dir={run_dir}", cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        logged[every] = metrics(run_dir)
    assert [row["step"] for row in logged[200]] == [200, 400, 600, 800, 1000]
    assert [row["step"] for row in logged[1]] == list(range(40, 1001, 40))

    def episodes(rows):
        count = sum(row["charts/episodes"] for row in rows)
        steps = sum(
            row["charts/episodes"] * row["charts/episodic_length"] for row in rows if row["charts/episodes"]
        )
        return count, round(steps)

    # the same seed finishes the same episodes; aggregated rows lose and repeat none of them
    assert episodes(logged[200]) == episodes(logged[1])
    assert episodes(logged[1])[0] >= 10


@pytest.mark.slow
def test_multirun_writes_every_job_under_outputs_multirun(tmp_path):
    result = pgrun("-m", "algo=vpg,rtg", "seed=0", *TINY, *EPISODE_BATCHES, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = sorted(path.parent for path in tmp_path.glob("outputs/multirun/*/*/*/summary.json"))
    assert [job.name.split("_")[0] for job in jobs] == ["0", "1"]
    assert ["algo=vpg" in jobs[0].name, "algo=rtg" in jobs[1].name] == [True, True]
    assert all("seed=0" in job.name for job in jobs)
    for job in jobs:
        assert list(job.glob("events.out.tfevents.*")) and (job / "policy.pt").is_file()


SHIPPED_ALGOS = sorted(
    path.stem for path in (Path(__file__).parent.parent / "configs" / "algo").glob("*.yaml")
)


@pytest.mark.slow
@pytest.mark.parametrize("algo", SHIPPED_ALGOS)
def test_every_algorithm_runs_on_discrete_and_continuous_actions(tmp_path, algo):
    for env in ["cartpole", "pendulum"]:
        run_dir = tmp_path / env
        result = pgrun(*tiny(algo), f"env={env}", f"hydra.run.dir={run_dir}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        rows = metrics(run_dir)
        if algo not in EPISODE_ALGOS:
            assert [row["step"] for row in rows] == [400, 800, 1200]
        assert all(np.isfinite(value) for row in rows for value in row.values())
