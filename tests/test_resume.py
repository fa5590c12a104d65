"""Runs that survive: checkpoints, interruption by signals and kill -9, exact resume."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tests_support import (
    EPISODE_ALGOS,
    EPISODE_BATCHES,
    TINY,
    after_start,
    learning_rows,
    metrics,
    pgrun,
    saved_parameters,
    shipped_config,
    start_pgrun,
    tiny,
    wait_for_rows,
)

from pgrun.training.checkpoint import checkpoint_files
from pgrun.training.interrupt import Interrupted, StopRequests
from pgrun.training.loop import train

SHIPPED_ALGOS = sorted(
    path.stem for path in (Path(__file__).parent.parent / "configs" / "algo").glob("*.yaml")
)


def assert_same_parameters(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


NORMALIZED = ["env=pendulum", "env.normalize_obs=true", "env.normalize_reward=true"]
"""running statistics of observations and of discounted returns, both in the checkpoint"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("algo", "extra"),
    [(algo, []) for algo in SHIPPED_ALGOS]
    + [
        ("ppo", NORMALIZED),
        ("rtg", [*NORMALIZED, "env.num_envs=2", "algo.batch_size=2", "total_steps=2000"]),
    ],
    ids=[*SHIPPED_ALGOS, "ppo-normalized", "rtg-normalized"],
)
def test_a_run_resumed_from_any_checkpoint_ends_as_the_uninterrupted_run(tmp_path, algo, extra):
    # small batches: many iterations, a checkpoint after each; resume from three of them
    batches = EPISODE_BATCHES if algo in EPISODE_ALGOS else ["algo.batch_size=100"]
    config = shipped_config(
        f"algo={algo}", *TINY, *batches, *extra, "checkpoint.every=1", "checkpoint.keep=1000",
        "log.tensorboard=false",
    )  # fmt: skip
    whole = tmp_path / "whole"
    whole.mkdir()
    train(config, whole)
    checkpoints = checkpoint_files(whole)[:-1]
    assert len(checkpoints) >= 3
    for checkpoint in [checkpoints[0], checkpoints[len(checkpoints) // 2], checkpoints[-1]]:
        resumed = tmp_path / checkpoint.stem
        resumed.mkdir()
        shutil.copy(whole / "metrics.jsonl", resumed)  # rows past the checkpoint must be superseded
        train(config, resumed, resume=torch.load(checkpoint, weights_only=True))
        assert learning_rows(resumed) == learning_rows(whole), checkpoint.name
        assert_same_parameters(saved_parameters(resumed), saved_parameters(whole))


class StopDuringCollection(StopRequests):
    """A stop requested at the `asked`-th time the loop asks: the collector asks before each env
    step, so a count inside a batch stops it there."""

    def __init__(self, asked: int) -> None:
        super().__init__()
        self.left = asked

    @property
    def requested(self) -> bool:
        self.left -= 1
        if self.left <= 0:
            self.signum = signal.SIGTERM
        return self.signum is not None


@pytest.mark.parametrize(("algo", "asked"), [("ppo", 130), ("is", 300)])
def test_a_stop_inside_a_batch_checkpoints_the_state_before_it_and_resumes_exactly(tmp_path, algo, asked):
    # observation and reward statistics, env copies and the random generators all move during
    # collection: the checkpoint must hold them as they were before the dropped batch
    batches = EPISODE_BATCHES if algo in EPISODE_ALGOS else ["algo.batch_size=100"]
    config = shipped_config(
        f"algo={algo}", *TINY, *batches, *NORMALIZED, "checkpoint.every=1000000", "log.tensorboard=false",
    )  # fmt: skip
    whole = tmp_path / "whole"
    whole.mkdir()
    train(config, whole)
    stopped = tmp_path / "stopped"
    stopped.mkdir()
    with pytest.raises(Interrupted) as interrupted:
        train(config, stopped, stop=StopDuringCollection(asked))  # (4 env copies: 4 steps an ask)
    files = checkpoint_files(stopped)
    assert [file.stem for file in files] == [f"step_{interrupted.value.checkpoint_step:012d}"]
    assert 0 < interrupted.value.checkpoint_step < 4 * asked
    train(config, stopped, resume=torch.load(files[0], weights_only=True))
    assert learning_rows(stopped) == learning_rows(whole)
    assert_same_parameters(saved_parameters(stopped), saved_parameters(whole))


RUN = [
    "algo=ppo", "algo.batch_size=200", "algo.minibatch_size=50", "algo.epochs=2", "total_steps=6000",
    "eval.every=1000", "eval.episodes=2", "log.console=false", "log.every=1", "checkpoint.every=400",
]  # fmt: skip


def start(run_dir: Path, *args: str) -> subprocess.Popen:
    return start_pgrun(run_dir, *RUN, *args)


def tensorboard_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar but time/*, as TensorBoard's own reader shows it (purged events dropped)."""
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return {
        tag: [(event.step, event.value) for event in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
        if not tag.startswith("time/")
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, Path]:
    """The reference runs, sync, async and native, never interrupted."""
    runs = {}
    for vectorization in ["sync", "async", "native"]:
        run_dir = tmp_path_factory.mktemp("reference") / vectorization
        result = pgrun(
            *RUN, f"env.vectorization={vectorization}", f"hydra.run.dir={run_dir}", cwd=run_dir.parent
        )
        assert result.returncode == 0, result.stderr
        runs[vectorization] = run_dir
    return runs


def assert_same_run(run_dir: Path, reference: Path) -> None:
    assert learning_rows(run_dir) == learning_rows(reference)
    scalars = tensorboard_scalars(run_dir)
    for tag, points in scalars.items():
        steps = [step for step, _ in points]
        assert len(steps) == len(set(steps)), f"{tag} has duplicated steps"
    assert scalars == tensorboard_scalars(reference)
    assert_same_parameters(saved_parameters(run_dir), saved_parameters(reference))
    summary, expected = (json_file(path / "summary.json") for path in (run_dir, reference))
    assert summary["env_steps"] == expected["env_steps"] == 6000
    assert summary["final_eval_return"] == expected["final_eval_return"]


def json_file(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("vectorization", "signum", "status"),
    [("sync", signal.SIGINT, 130), ("async", signal.SIGTERM, 143), ("native", signal.SIGINT, 130)],
)
def test_a_signal_stops_the_run_with_a_checkpoint_and_resume_continues_it_exactly(
    tmp_path, uninterrupted, vectorization, signum, status
):
    run_dir = tmp_path / "run"
    process = start(run_dir, f"env.vectorization={vectorization}")
    wait_for_rows(process, run_dir, 7)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == status, stderr
    assert "Traceback" not in stderr, stderr
    lines = after_start(stderr)
    name = signal.Signals(signum).name
    assert len(lines) == 1 and lines[0].startswith(
        f"pgrun: interrupted by {name}: checkpoint written at env step "
    )
    assert lines[0].endswith(f"; resume with: pgrun resume={run_dir}")
    stopped_at = int(lines[0].split("env step ")[1].split(";")[0].replace(",", ""))
    assert 1400 <= stopped_at < 6000
    assert checkpoint_files(run_dir)[-1].name == f"step_{stopped_at:012d}.pt"
    assert json_file(run_dir / "run.json")["status"] == "interrupted"
    assert not (run_dir / "policy.pt").exists()

    resumed = pgrun(f"resume={run_dir}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run_dir} from step_{stopped_at:012d}.pt" in resumed.stderr
    assert_same_run(run_dir, uninterrupted[vectorization])
    record = json_file(run_dir / "run.json")
    assert record["status"] == "finished" and len(record["sessions"]) == 2


@pytest.mark.slow
def test_after_kill_9_the_last_checkpoint_resumes_exactly_and_a_corrupt_newest_one_is_skipped(
    tmp_path, uninterrupted
):
    run_dir = tmp_path / "run"
    process = start(run_dir, "env.vectorization=sync")
    wait_for_rows(process, run_dir, 11)  # past the checkpoints at 400, 800, 1200, 1600, 2000
    # kill it when rows were logged past the newest checkpoint (the steps a resume redoes):
    # frozen by SIGSTOP to look, so the state seen is the state killed
    for _ in range(200):
        os.kill(process.pid, signal.SIGSTOP)
        newest_step = int(checkpoint_files(run_dir)[-1].stem.split("_")[1])
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        if max(json.loads(line)["step"] for line in lines if line.endswith("}")) > newest_step:
            break
        os.kill(process.pid, signal.SIGCONT)
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    checkpoints = checkpoint_files(run_dir)
    assert len(checkpoints) == 3  # checkpoint.keep
    assert max(row["step"] for row in metrics(run_dir)) > int(checkpoints[-1].stem.split("_")[1])
    newest = checkpoints[-1].read_bytes()
    checkpoints[-1].write_bytes(newest[: len(newest) // 2])  # as a crash mid-copy would leave it

    resumed = pgrun(f"resume={run_dir}", cwd=tmp_path)  # the dead process's lock does not hold it
    assert resumed.returncode == 0, resumed.stderr
    assert f"skipping checkpoint {checkpoints[-1].name}: unreadable" in resumed.stderr
    assert f"from {checkpoints[-2].name}" in resumed.stderr
    assert_same_run(run_dir, uninterrupted["sync"])


@pytest.mark.slow
def test_a_second_sigint_stops_at_once_and_leaves_every_checkpoint_whole(tmp_path):
    run_dir = tmp_path / "run"
    # long iterations (2000 steps, 100 epochs of 64-step minibatches, ~2 s here): both signals
    # land in one (at 10 epochs, ~0.2 s, the first one's stop sometimes came before the second)
    process = start(
        run_dir, "algo.batch_size=2000", "algo.minibatch_size=64", "algo.epochs=100", "total_steps=40000"
    )
    wait_for_rows(process, run_dir, 2)
    time.sleep(0.5)  # well inside the third iteration (seconds long), past the second's stop check
    process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    lines = after_start(stderr)
    assert len(lines) == 1 and lines[0].startswith(
        "pgrun: interrupted by SIGINT: stopped at once at env step "
    )
    stopped_at = int(lines[0].split("env step ")[1].split(";")[0].replace(",", ""))
    assert checkpoint_files(run_dir)[-1].name == f"step_{stopped_at:012d}.pt"
    for checkpoint in checkpoint_files(run_dir):
        assert torch.load(checkpoint, weights_only=True)["progress"]["steps"] <= stopped_at
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))
    resumed = pgrun(f"resume={run_dir}", f"total_steps={stopped_at + 2000}", cwd=tmp_path)
    assert resumed.returncode == 0 and f"from step_{stopped_at:012d}.pt" in resumed.stderr


@pytest.mark.slow
def test_a_run_of_the_version_before_the_redesign_resumes_as_that_version_resumed_it(tmp_path):
    """tests/data/legacy_run_b26c809: a PPO Pendulum-v1 run dir written by pgrun at b26c809
    (checkpoint format 2, the policy's keys before the encoder/head split). Resumed from 4,096
    to 8,192 env steps it logs the rows b26c809 logged resuming it
    (tests/data/legacy_run_b26c809_resumed.json): bit for bit on the Intel Xeon that wrote
    them; on another CPU, whose BLAS kernels round float32 products differently in the last
    bit, within 1e-3 relative (measured on an AMD EPYC: 5e-5 at most, in the small KLs). A
    lost optimizer state, a wrongly mapped layer or an unrestored env moves them by percents."""
    data = Path(__file__).resolve().parent / "data"
    run_dir = tmp_path / "run"
    shutil.copytree(data / "legacy_run_b26c809", run_dir)
    # b26c809 stretched the linear schedule over the new budget; that is now asked for by name
    result = pgrun(f"resume={run_dir}", "total_steps=8192", "schedule_steps=8192", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "code has changed since its last session" in result.stderr  # its run.json names b26c809
    rows, expected = (
        learning_rows(run_dir),
        json.loads((data / "legacy_run_b26c809_resumed.json").read_text()),
    )
    assert [row.keys() for row in rows] == [row.keys() for row in expected]
    for row, expected_row in zip(rows, expected, strict=True):
        assert row == pytest.approx(expected_row, rel=1e-3, abs=1e-9), row["step"]


def test_a_larger_budget_on_resume_keeps_the_learning_rates_of_the_first_schedule(tmp_path):
    # lr 1e-3 annealed linearly over the first 2 batches of 200 steps; extended to 4 batches
    run = ["algo=ppo", "env=pendulum", "algo.batch_size=200", "algo.epochs=1", "algo.optim.lr=0.001",
           "algo.optim.lr_schedule=linear", "eval.every=100000", "log.every=1", "log.tensorboard=false",
           "checkpoint.every=200", "checkpoint.keep=10"]  # fmt: skip
    kept = tmp_path / "kept"
    assert pgrun(*run, "total_steps=400", f"hydra.run.dir={kept}", cwd=tmp_path).returncode == 0
    stretched = tmp_path / "stretched"
    shutil.copytree(kept, stretched)
    result = pgrun(f"resume={kept}", "total_steps=800", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "schedule ends at schedule_steps=400" in result.stderr
    assert [row["train/lr"] for row in learning_rows(kept)] == pytest.approx([1e-3, 5e-4, 0.0, 0.0])
    result = pgrun(f"resume={stretched}", "total_steps=800", "schedule_steps=800", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [row["train/lr"] for row in learning_rows(stretched)] == pytest.approx([1e-3, 5e-4, 5e-4, 2.5e-4])


@pytest.mark.slow
def test_a_run_that_stopped_at_its_target_has_nothing_to_resume(tmp_path):
    run_dir = tmp_path / "run"
    first = pgrun(
        *TINY, "algo=ppo", "algo.batch_size=400", "target_return=1", "stop_at_target=true",
        f"hydra.run.dir={run_dir}", cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    rows = metrics(run_dir)
    assert rows[-1]["step"] == 800 and rows[-1]["eval/return"] >= 1  # the first evaluation (eval.every=600)
    again = pgrun(f"resume={run_dir}", "total_steps=5000", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "reached its target_return=1.0 at env step 800 and stopped there" in again.stderr
    assert metrics(run_dir) == rows


def minibatch_size_for_chunk_size(algo: dict) -> dict:
    return {("minibatch_size" if key == "chunk_size" else key): value for key, value in algo.items()}


def value_coef_beside_value(algo: dict) -> dict:
    value = dict(algo["value"])
    return {**algo, "value": value, "value_coef": value.pop("coef")}


RENAMED_KEYS = {  # today's key: a run setting it to a value, how the version before the rename saved algo
    "chunk_size": (["algo=rtg", *TINY, *EPISODE_BATCHES], 7, minibatch_size_for_chunk_size),
    "value.coef": (tiny("a2c"), 0.3, value_coef_beside_value),
}


@pytest.mark.parametrize("key", RENAMED_KEYS)
def test_a_run_saved_under_a_keys_old_name_resumes_reruns_and_plots(tmp_path, key):
    """vpg, rtg, baseline and is's `minibatch_size` is `chunk_size` now, a2c's `value_coef`
    `value.coef` (PPO's name): a run saved under the old name resumes, reruns and plots with
    the value it had."""
    run_dir = tmp_path / "run"
    arguments, value, old_names = RENAMED_KEYS[key]
    result = pgrun(*arguments, f"algo.{key}={value}", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    def saved_value(algo: dict) -> object:
        for name in key.split("."):
            algo = algo[name]
        return algo

    # as the version before the rename wrote them
    for path in checkpoint_files(run_dir):
        state = torch.load(path, weights_only=True)
        state["config"]["algo"] = old_names(state["config"]["algo"])
        torch.save(state, path)
    record = json_file(run_dir / "run.json")
    record["config"]["algo"] = old_names(record["config"]["algo"])
    (run_dir / "run.json").write_text(json.dumps(record))
    hydra_config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    hydra_config.algo = old_names(OmegaConf.to_container(hydra_config.algo))
    OmegaConf.save(hydra_config, run_dir / ".hydra" / "config.yaml")

    resumed = pgrun(f"resume={run_dir}", "total_steps=1600", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    newest = torch.load(checkpoint_files(run_dir)[-1], weights_only=True)
    assert saved_value(newest["config"]["algo"]) == value
    again = tmp_path / "again"
    rerun = pgrun(f"rerun={run_dir}", f"hydra.run.dir={again}", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert saved_value(json_file(again / "run.json")["config"]["algo"]) == value
    # pgrun-plot reads the old name as the new one: the two runs' configs do not differ
    from pgrun.analysis.run_groups import differing_keys, read_run
    from pgrun.cli.plot import with_todays_keys

    assert read_run(run_dir).config[f"algo.{key}"] == value
    runs = [read_run(run_dir, with_todays_keys), read_run(again, with_todays_keys)]
    assert differing_keys(runs) == []
