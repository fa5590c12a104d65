"""Sweeps through Hydra's real launcher and sweeper plugins, and pgrun-plot on their output."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tests_support import EPISODE_BATCHES, TINY, metrics, pgrun

pytestmark = pytest.mark.slow


def sweep_jobs(cwd: Path) -> list[Path]:
    return sorted((path.parent for path in cwd.glob("outputs/multirun/*/*/*/.hydra")), key=lambda p: p.name)


def check_job(job: Path) -> dict:
    """A finished job: an event file with eval/return, metrics and a summary that agree."""
    events = EventAccumulator(str(job))
    events.Reload()
    assert "eval/return" in events.Tags()["scalars"]
    rows = metrics(job)
    summary = json.loads((job / "summary.json").read_text())
    assert summary["final_eval_return"] == rows[-1]["eval/return"]
    assert (job / "policy.pt").is_file()
    return summary


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_two_by_two_multirun(tmp_path, launcher):
    args = ["-m", "algo=vpg,rtg", "seed=0,1", *TINY, *EPISODE_BATCHES]
    if launcher == "joblib":
        args += ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    result = pgrun(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = sweep_jobs(tmp_path)
    assert len(jobs) == 4
    names = {job.name.split("_", 1)[1] for job in jobs}
    for algo in ["vpg", "rtg"]:
        for seed in [0, 1]:
            assert any(f"algo={algo}" in name and f"seed={seed}" in name for name in names), names
    for job in jobs:
        check_job(job)


def test_a_failing_job_leaves_the_others_intact_and_every_failure_is_reported(tmp_path):
    result = pgrun("-m", "algo=rtg", "algo.optim.lr=0.01,-1,0.02,-2", *TINY, *EPISODE_BATCHES, cwd=tmp_path)
    assert result.returncode == 1
    ours = [line for line in result.stderr.splitlines() if line.startswith("pgrun: error: ")]
    assert ours[0].startswith("pgrun: error: 2 job(s) of the sweep in ") and ours[0].endswith(" failed:")
    assert ours[1].startswith("pgrun: error: job 1_") and "algo.optim.lr=-1.0 is not allowed" in ours[1]
    assert ours[2].startswith("pgrun: error: job 3_") and "algo.optim.lr=-2.0 is not allowed" in ours[2]
    assert len(ours) == 3
    finished = [job for job in sweep_jobs(tmp_path) if (job / "summary.json").is_file()]
    assert sorted(
        "algo.optim.lr=0.01" in job.name or "algo.optim.lr=0.02" in job.name for job in finished
    ) == [
        True,
        True,
    ]
    for job in finished:
        check_job(job)


def test_submitit_local_launcher(tmp_path):
    result = pgrun(
        "-m", "hydra/launcher=submitit_local", "algo=vpg,rtg", *TINY, *EPISODE_BATCHES, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    jobs = [job for job in sweep_jobs(tmp_path) if (job / "summary.json").is_file()]
    assert len(jobs) == 2
    for job in jobs:
        check_job(job)


# Ray binds its services to the machine's address unless told it is not a cluster node:
# these keep every Ray connection of the tests on loopback. Ray 2.60 also turns on token
# authentication; the client must be told to present the token that `ray start` saved.
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token"}


def test_ray_launcher_on_a_local_ray_instance(tmp_path):
    result = pgrun(
        "-m", "hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2", "algo=vpg,rtg",
        *TINY, *EPISODE_BATCHES, cwd=tmp_path, extra_env=RAY_ENV,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    jobs = sweep_jobs(tmp_path)
    assert len(jobs) == 2
    for job in jobs:
        check_job(job)


@pytest.fixture
def ray_cluster():
    """A one-node Ray cluster on loopback, stopped afterwards."""
    ray = str(Path(sys.executable).parent / "ray")
    port = "6390"
    env = dict(os.environ) | RAY_ENV
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    started = subprocess.run(
        [ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", f"--temp-dir={temp_dir}"],
        capture_output=True, text=True, timeout=180, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=180, env=env)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_ray_launcher_on_an_existing_cluster(tmp_path, ray_cluster):
    result = pgrun(
        "-m",
        "hydra/launcher=ray",
        f"hydra.launcher.ray.init.address={ray_cluster}",
        "+hydra.launcher.ray.init.object_store_memory=null",
        # cluster workers resolve relative paths from their own working directory
        f"hydra.sweep.dir={tmp_path}/outputs/multirun/cluster/sweep",
        "algo=vpg,rtg",
        *TINY,
        *EPISODE_BATCHES,
        cwd=tmp_path,
        extra_env=RAY_ENV,
    )
    assert result.returncode == 0, result.stderr
    jobs = sweep_jobs(tmp_path)
    assert len(jobs) == 2
    for job in jobs:
        check_job(job)


def test_optuna_sweep_records_objectives_and_the_best_trial(tmp_path):
    result = pgrun(
        "-m",
        "hydra/sweeper=optuna",
        "hydra.sweeper.n_trials=3",  # no direction: pgrun makes Optuna maximize the return
        "hydra.sweeper.sampler.seed=0",
        "algo.optim.lr=tag(log, interval(1e-4, 1e-2))",
        "algo=rtg",
        *TINY,
        *EPISODE_BATCHES,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    jobs = sweep_jobs(tmp_path)
    assert len(jobs) == 3
    objectives = [check_job(job)["final_eval_return"] for job in jobs]
    results = yaml.safe_load(
        next(tmp_path.glob("outputs/multirun/*/*/optimization_results.yaml")).read_text()
    )
    assert results["best_value"] == pytest.approx(max(objectives))
    best_job = jobs[int(np.argmax(objectives))]
    assert f"algo.optim.lr={results['best_params']['algo.optim.lr']}" in best_job.name


def test_pgrun_plot_draws_curves_and_a_table_that_matches_the_metrics(tmp_path):
    result = pgrun("-m", "algo=vpg,rtg", "seed=0,1", *TINY, *EPISODE_BATCHES, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sweep = next(tmp_path.glob("outputs/multirun/*/*"))
    plot = subprocess.run(
        [str(Path(sys.executable).parent / "pgrun-plot"), str(sweep), "--out", str(tmp_path / "plots")],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert plot.returncode == 0, plot.stderr
    pixels = matplotlib.image.imread(tmp_path / "plots" / "curves.png")
    assert pixels.shape[0] > 200 and pixels.shape[1] > 300
    assert pixels[..., :3].std() > 0.05  # not a blank canvas
    assert len(np.unique(pixels[..., :3].reshape(-1, 3), axis=0)) > 20  # lines and bands in colour
    rows = {row["group"]: row for row in _read_csv(tmp_path / "plots" / "results.csv")}
    assert set(rows) == {"algo=rtg", "algo=vpg"}
    for algo in ["vpg", "rtg"]:
        finals = [metrics(job)[-1]["eval/return"] for job in sweep.iterdir() if f"algo={algo}" in job.name]
        assert int(rows[f"algo={algo}"]["seeds"]) == 2
        assert float(rows[f"algo={algo}"]["final_mean"]) == pytest.approx(np.mean(finals))
        assert float(rows[f"algo={algo}"]["final_std"]) == pytest.approx(np.std(finals, ddof=1))
    assert "algo=vpg" in (tmp_path / "plots" / "results.md").read_text()
    # --where keeps the matching runs only; --group names the grouping keys
    only = subprocess.run(
        [str(Path(sys.executable).parent / "pgrun-plot"), str(sweep), "--out", str(tmp_path / "only"),
         "--where", "algo=rtg", "--group", "algo", "seed"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert only.returncode == 0, only.stderr
    assert sorted(row["group"] for row in _read_csv(tmp_path / "only" / "results.csv")) == [
        "algo=rtg, seed=0",
        "algo=rtg, seed=1",
    ]
    # a run that did not finish (no summary.json) is named and left out, not counted as a seed
    unfinished = next(job for job in sweep.iterdir() if "algo=vpg" in job.name and "seed=1" in job.name)
    (unfinished / "summary.json").unlink()
    partial = subprocess.run(
        [str(Path(sys.executable).parent / "pgrun-plot"), str(sweep), "--out", str(tmp_path / "partial")],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert partial.returncode == 0, partial.stderr
    assert f"skipping {unfinished}: it did not finish" in partial.stderr
    seeds = {row["group"]: int(row["seeds"]) for row in _read_csv(tmp_path / "partial" / "results.csv")}
    assert seeds == {"algo=vpg": 1, "algo=rtg": 2}
    # --unfinished reads it too: its rows so far
    with_it = subprocess.run(
        [str(Path(sys.executable).parent / "pgrun-plot"), str(sweep), "--out", str(tmp_path / "with_it"),
         "--unfinished"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert with_it.returncode == 0 and "skipping" not in with_it.stderr, with_it.stderr
    seeds = {row["group"]: int(row["seeds"]) for row in _read_csv(tmp_path / "with_it" / "results.csv")}
    assert seeds == {"algo=vpg": 2, "algo=rtg": 2}


def test_pgrun_plot_rejects_a_missing_folder(tmp_path):
    plot = subprocess.run(
        [str(Path(sys.executable).parent / "pgrun-plot"), str(tmp_path / "nope")],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert plot.returncode != 0
    assert plot.stderr.strip().splitlines() == [f"pgrun-plot: error: not a folder: {tmp_path / 'nope'}"]


def _read_csv(path: Path) -> list[dict]:
    import csv

    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_compare_experiment_preset_expands_to_the_five_way_sweep(tmp_path):
    result = pgrun("experiment=compare_cartpole", "--cfg", "hydra", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "algo: vpg,rtg,baseline,ppo,trpo" in result.stdout
