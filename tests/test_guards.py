"""Runs that fail end cleanly: one line naming what went wrong and where, the last
checkpoint intact, nothing half-written."""

import json
import os
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from tests_support import PGRUN, TINY, after_start, learning_rows, pgrun, shipped_config, tiny

from pgrun.collection.envs import GUARD_MAX_EPISODE_STEPS, episode_step_limit, make_vector_env
from pgrun.config import EnvConfig
from pgrun.training.checkpoint import atomic_save, checkpoint_files, load_checkpoint
from pgrun.training.loop import Training


def our_lines(result) -> list[str]:
    return [line for line in after_start(result.stderr) if line.startswith("pgrun:")]


@pytest.mark.slow
def test_a_nan_reward_stops_the_run_naming_the_env_and_keeps_the_last_checkpoint(tmp_path, tests_dir):
    run_dir = tmp_path / "run"
    # each of the 4 copies turns NaN after 150 of its steps: env step 600 of the run
    result = pgrun(
        *tiny("ppo"), "env.id=faulty_envs:LateNaNCorridor-v0", "+env.kwargs.healthy_steps=150",
        "algo.batch_size=200", "checkpoint.every=200", f"hydra.run.dir={run_dir}",
        cwd=tmp_path, tests_dir=tests_dir,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert our_lines(result) == [
        "pgrun: error: the env returned a non-finite reward (nan) at env step 600 (iteration 4): the env "
        "'faulty_envs:LateNaNCorridor-v0' is at fault, not the algorithm; the last checkpoint "
        "(env step 600) is kept"
    ]
    state, path = load_checkpoint(run_dir)
    assert path.name == "step_000000000600.pt" and state["progress"]["steps"] == 600
    assert not (run_dir / "policy.pt").exists() and not (run_dir / "summary.json").exists()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "failed" and "non-finite reward" in record["error"]


@pytest.mark.slow
def test_an_env_that_raises_ends_the_run_in_one_line(tmp_path, tests_dir):
    result = pgrun(
        *tiny("ppo"), "env.id=faulty_envs:CrashingCorridor-v0", "+env.kwargs.healthy_steps=120",
        "hydra.run.dir=run", cwd=tmp_path, tests_dir=tests_dir,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert our_lines(result) == [
        "pgrun: error: the env raised RuntimeError: the simulator lost its licence server at env step 480 "
        "(iteration 2): the env 'faulty_envs:CrashingCorridor-v0' is at fault, not the algorithm; "
        "no checkpoint was written yet"
    ]


@pytest.mark.slow
def test_a_clip_that_fails_mid_run_is_a_warning_and_the_run_goes_on(tmp_path, tests_dir):
    """eval.video's renderer breaking after the check at start: the run warns once, records
    no more clips, and ends as the same run without video does."""
    common = [*tiny("ppo"), "env.id=faulty_envs:RendersOnceCorridor-v0", "eval.video_every=600"]
    result = pgrun(*common, "eval.video=true", "hydra.run.dir=video", cwd=tmp_path, tests_dir=tests_dir)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    warnings = [line for line in our_lines(result) if "warning" in line]
    assert warnings == [
        "pgrun: warning: no more videos in this run: recording one at env step 800 failed "
        "(RuntimeError: the renderer broke)"
    ]
    plain = pgrun(*common, "hydra.run.dir=plain", cwd=tmp_path, tests_dir=tests_dir)
    assert plain.returncode == 0, plain.stderr
    assert learning_rows(tmp_path / "video") == learning_rows(tmp_path / "plain")
    assert not list((tmp_path / "video").glob("videos/*.mp4"))


def test_an_env_that_cannot_render_is_refused_before_a_run_with_video_starts(tmp_path, tests_dir):
    """A custom env without render_mode: one line at once, not a failure at the first clip."""
    result = pgrun(
        *tiny("vpg"), "env.id=corridor_env:Corridor", "env.max_episode_steps=20", "eval.video=true",
        "hydra.run.dir=run", cwd=tmp_path, tests_dir=tests_dir,
    )  # fmt: skip
    assert result.returncode == 2
    [line] = our_lines(result)
    assert line.startswith(
        "pgrun: error: eval.video=true: env 'corridor_env:Corridor' cannot render a frame: "
    )
    assert "unexpected keyword argument 'render_mode'" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_diverging_update_stops_the_run_naming_the_quantity(tmp_path):
    run_dir = tmp_path / "run"
    # a step of 1e30: Gaussian means far beyond float32's reach of (a - mu)^2 / sigma^2
    result = pgrun(
        *tiny("vpg"), "env=pendulum", "algo.optim.name=sgd", "algo.optim.lr=1e30", f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert our_lines(result) == [
        "pgrun: error: training diverged at iteration 2 (env step 1,600): train/loss is nan; lower the "
        "learning rate or clip gradients; no checkpoint was written yet"
    ]
    assert not (run_dir / "policy.pt").exists() and not list(run_dir.glob(".policy.pt.*"))


def test_an_env_without_a_time_limit_gets_one_with_a_warning(tmp_path, capsys):
    import faulty_envs  # noqa: F401 - registers EndlessWalk-v0

    config = EnvConfig(id="EndlessWalk-v0")
    assert episode_step_limit(config) == (GUARD_MAX_EPISODE_STEPS, True)
    assert episode_step_limit(EnvConfig(id="EndlessWalk-v0", max_episode_steps=50)) == (50, False)
    assert episode_step_limit(EnvConfig(id="CartPole-v1")) == (500, False)
    envs = make_vector_env(config, 1)
    envs.reset(seed=0)
    for step in range(1, GUARD_MAX_EPISODE_STEPS + 1):  # noqa: B007 - read after the loop
        _, _, terminated, truncated, _ = envs.step(np.array([1]))
        if truncated[0] or terminated[0]:
            break
    assert (step, bool(truncated[0]), bool(terminated[0])) == (GUARD_MAX_EPISODE_STEPS, True, False)

    training = Training(shipped_config(*tiny("ppo"), "env.id=EndlessWalk-v0"), tmp_path)
    training.close()
    assert "env 'EndlessWalk-v0' has no time limit; episodes are truncated at 100,000 steps" in (
        capsys.readouterr().err
    )


def limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_failed_write_leaves_the_previous_checkpoint_whole(tmp_path):
    path = tmp_path / "step_000000000001.pt"
    atomic_save({"weights": torch.zeros(10)}, path)
    script = (
        "import sys, torch; from pathlib import Path; from pgrun.training.checkpoint import atomic_save\n"
        "atomic_save({'weights': torch.ones(100_000)}, Path(sys.argv[1]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        preexec_fn=limit_file_size(50_000),
    )
    assert result.returncode != 0 and "File too large" in result.stderr
    assert torch.equal(torch.load(path, weights_only=True)["weights"], torch.zeros(10))
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temporary file left behind


@pytest.mark.slow
def test_a_full_disk_ends_the_run_in_one_line_with_nothing_half_written(tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [PGRUN, *tiny("ppo"), "checkpoint.every=400", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=600,
        preexec_fn=limit_file_size(60_000),  # a checkpoint of this run is ~140 kB
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [line] = our_lines(result)
    assert line.startswith("pgrun: error: cannot write the run's files (File too large: ")
    assert line.endswith("no checkpoint was written yet")
    assert checkpoint_files(run_dir) == [] and not list((run_dir / "checkpoints").iterdir())
    assert not (run_dir / "policy.pt").exists()


def test_a_run_dir_that_cannot_be_made_is_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    result = pgrun(*TINY, f"hydra.run.dir={blocker}/run", cwd=tmp_path)
    assert result.returncode == 1
    assert our_lines(result) == [f"pgrun: error: Not a directory: {blocker}/run"] or (
        len(our_lines(result)) == 1 and str(blocker) in our_lines(result)[0]
    ), result.stderr


@pytest.mark.slow
def test_resuming_an_env_that_cannot_be_replayed_is_one_line_not_a_silent_drift(tmp_path, tests_dir):
    run_dir = tmp_path / "run"
    env = "env.id=faulty_envs:GlobalRandomWalk-v0"
    result = pgrun(*tiny("ppo"), env, f"hydra.run.dir={run_dir}", cwd=tmp_path, tests_dir=tests_dir)
    assert result.returncode == 0, result.stderr
    resumed = pgrun(f"resume={run_dir}", "total_steps=2400", cwd=tmp_path, tests_dir=tests_dir)
    assert resumed.returncode == 1 and "Traceback" not in resumed.stderr
    assert our_lines(resumed)[-1] == (
        "pgrun: error: the env did not come back to its saved state when its episodes were replayed: "
        "it has randomness outside env.np_random or state a reset does not clear, so this run cannot be "
        "resumed exactly"
    )


PEAK_MEMORY = (
    "import resource, subprocess, sys; "
    "code = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)"
)
"""runs the command given and prints its peak resident memory (KiB) as stderr's last line"""


def test_episodes_that_never_end_stop_an_episode_batch_at_the_run_budget(tmp_path, tests_dir):
    # a module:Class env has no registered time limit: pgrun's guard cuts episodes only at
    # 100,000 steps, so vpg's batch of 50 episodes would take 5M steps of a 20,000-step budget
    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(tests_dir))
    result = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY, PGRUN, "algo=vpg", "env.id=faulty_envs:EndlessWalk",
         "total_steps=20000", "eval.every=1000000", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    *lines, peak_kib = result.stderr.strip().splitlines()
    assert result.returncode == 1, result.stderr
    assert [line for line in after_start("\n".join(lines)) if line.startswith("pgrun: error")] == [
        "pgrun: error: an episode batch reached 20,000 env steps (the limit of 20,000) before its 50 "
        "episodes had all ended: the episodes of 'faulty_envs:EndlessWalk' may never end; set "
        "env.max_episode_steps to cut them; no checkpoint was written yet"
    ]
    assert int(peak_kib) < 1_000_000  # KiB: under 1 GB (the process itself is ~0.4 GB)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"


def test_an_episode_batch_stops_before_it_fills_the_memory(monkeypatch):
    import faulty_envs  # noqa: F401 - registers EndlessWalk-v0

    from pgrun.collection import collector as collection
    from pgrun.collection.normalization import ObservationPreprocessor
    from pgrun.config import PolicyConfig
    from pgrun.networks.policy import make_policy

    monkeypatch.setattr(collection, "batch_memory_limit", lambda: 2**20)  # 1 MiB: ~700 steps of 1 copy
    envs = make_vector_env(EnvConfig(id="EndlessWalk-v0"), 1)
    preprocessor = ObservationPreprocessor(envs.single_observation_space)
    policy = make_policy(preprocessor.layout, envs.single_action_space, PolicyConfig())
    collector = collection.Collector(envs, policy, preprocessor, "episodes", 2, seed=0)
    with pytest.raises(collection.BatchTooLong, match="half this machine's memory") as stopped:
        collector.collect()
    envs.close()
    assert 300 < stopped.value.env_steps < 1100


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_a_batch_that_never_ends_within_a_step(tmp_path, tests_dir, signum):
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [PGRUN, "algo=vpg", "env.id=faulty_envs:EndlessWalk", "total_steps=1e9", f"hydra.run.dir={run_dir}",
         "log.console=false"],
        cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(tests_dir)), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "run.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # collecting the first batch, which would take 5M steps
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 128 + signum, stderr
    name = signal.Signals(signum).name
    assert our_lines(subprocess.CompletedProcess([], 0, "", stderr))[-2:] == [
        "pgrun: warning: env 'faulty_envs:EndlessWalk' has no time limit; episodes are truncated at 100,000 "
        "steps (set env.max_episode_steps to choose)",
        f"pgrun: interrupted by {name}: checkpoint written at env step 0; resume with: "
        f"pgrun resume={run_dir}",
    ]
    # the partial batch is dropped: the checkpoint is the state before it
    assert [path.name for path in checkpoint_files(run_dir)] == ["step_000000000000.pt"]
    assert load_checkpoint(run_dir)[0]["progress"]["steps"] == 0
