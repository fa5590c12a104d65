"""One run per directory, its lock, its provenance; resume's rules; rerun; unsafe checkpoints."""

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from tests_support import learning_rows, pgrun, saved_parameters, tiny

from pgrun.training.checkpoint import CHECKPOINT_DIR, CHECKPOINT_FORMAT, checkpoint_files


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A short ppo run, finished, checkpointed every 400 steps."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    result = pgrun(*tiny("ppo"), "checkpoint.every=400", f"hydra.run.dir={run_dir}", cwd=run_dir.parent)
    assert result.returncode == 0, result.stderr
    return run_dir


def snapshot(run_dir: Path) -> dict[str, bytes]:
    """Every file's bytes but the lock's (which records who last tried the dir)."""
    return {
        str(path.relative_to(run_dir)): path.read_bytes()
        for path in run_dir.rglob("*")
        if path.is_file() and path.name != ".lock"
    }


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pgrun: error: "), result.stderr
    return lines[0]


def test_a_new_run_into_a_dir_that_holds_a_run_is_refused_and_leaves_it_untouched(tmp_path, finished_run):
    before = snapshot(finished_run)
    result = pgrun(*tiny("vpg"), f"hydra.run.dir={finished_run}", cwd=tmp_path)
    assert result.returncode == 2
    line = one_error_line(result)
    assert f"{finished_run} already holds a run" in line and f"pgrun resume={finished_run}" in line
    assert snapshot(finished_run) == before
    # the same with a bad override: the error is about the override, the run stays as it was
    result = pgrun(*tiny("vpg"), "algo.gamma=2", f"hydra.run.dir={finished_run}", cwd=tmp_path)
    assert result.returncode == 2 and "algo.gamma=2" in one_error_line(result)
    assert snapshot(finished_run) == before


def test_a_run_dir_locked_by_a_live_process_is_refused(tmp_path, finished_run):
    with (finished_run / ".lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write("pid 4242 on testhost\n")
        lock.flush()
        result = pgrun(f"resume={finished_run}", "total_steps=1600", cwd=tmp_path)
        fcntl.flock(lock, fcntl.LOCK_UN)
    assert result.returncode == 2
    assert "is in use by another pgrun process" in one_error_line(result)


def test_provenance_records_versions_command_and_status(finished_run):
    record = json.loads((finished_run / "run.json").read_text())
    assert record["status"] == "finished" and record["env_steps"] == 1200
    session = record["sessions"][0]
    assert session["pgrun"] and session["torch"].startswith("2.13.0") and session["gymnasium"]
    assert (
        session["python"].startswith("3.11") and session["host"] and session["started"] and session["ended"]
    )
    assert session["command"][0] == "pgrun" and "checkpoint.every=400" in session["command"]
    repo = Path(__file__).resolve().parent.parent
    if (repo / ".git").exists():  # run from this checkout: its commit is recorded
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True)
        assert session["git"]["commit"] == head.stdout.strip()
    else:
        assert session["git"] is None
    assert record["config"]["algo"]["clip"] == 0.2 and record["choices"]["algo"] == "ppo"


@pytest.mark.parametrize(
    "override",
    ["seed=1", "algo.optim.lr=0.1", "algo=trpo", "env=acrobot", "env.num_envs=2", "~log.every"],
)
def test_resume_refuses_what_changes_the_experiment(tmp_path, finished_run, override):
    before = snapshot(finished_run)
    result = pgrun(f"resume={finished_run}", "total_steps=2400", override, cwd=tmp_path)
    assert result.returncode == 2
    line = one_error_line(result)
    assert f"resume cannot change {override}" in line and "total_steps" in line
    assert snapshot(finished_run) == before


def test_resume_extends_a_finished_run_and_says_when_there_is_nothing_to_do(tmp_path, finished_run):
    extended = tmp_path / "extended"
    os.system(f"cp -r {finished_run} {extended}")
    result = pgrun(f"resume={extended}", cwd=tmp_path)
    assert result.returncode == 0
    assert "has finished its 1,200 env steps" in result.stderr
    record = json.loads((extended / "run.json").read_text())
    record["sessions"][-1]["torch"] = "2.0.0"  # as if the run had started under another torch
    (extended / "run.json").write_text(json.dumps(record))
    result = pgrun(f"resume={extended}", "total_steps=2.4e3", "log.every=400", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (
        "warning: the run's code has changed since its last session (torch 2.0.0 -> 2.13.0" in result.stderr
    )
    steps = [row["step"] for row in learning_rows(extended)]
    assert steps[:3] == [400, 800, 1200] and steps[3:] == [1600, 2000, 2400]
    assert json.loads((extended / "summary.json").read_text())["env_steps"] == 2400
    assert checkpoint_files(extended)[-1].name == "step_000000002400.pt"


def test_rerun_starts_a_new_run_with_the_saved_config_and_gets_the_same_result(tmp_path, finished_run):
    result = pgrun(f"rerun={finished_run}", "hydra.run.dir=again", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    again = tmp_path / "again"
    assert learning_rows(again) == learning_rows(finished_run)
    for name, tensor in saved_parameters(again).items():
        assert torch.equal(tensor, saved_parameters(finished_run)[name])
    assert (
        json.loads((again / "run.json").read_text())["config"]
        == json.loads((finished_run / "run.json").read_text())["config"]
    )
    # a rerun may change a value, not the algorithm
    seeded = pgrun(f"rerun={finished_run}", "seed=5", "hydra.run.dir=seeded", cwd=tmp_path)
    assert seeded.returncode == 0, seeded.stderr
    assert json.loads((tmp_path / "seeded" / "run.json").read_text())["config"]["seed"] == 5
    refused = pgrun(f"rerun={finished_run}", "algo=trpo", cwd=tmp_path)
    assert refused.returncode == 2 and "rerun keeps the saved run's algorithm" in one_error_line(refused)


def test_rerun_of_a_run_made_with_an_algo_config_of_ones_own_says_so_in_one_line(tmp_path, finished_run):
    """A run of `--config-dir mine algo=mine` records algo=mine, which pgrun's configs lack."""
    run_dir = tmp_path / "mine"
    shutil.copytree(finished_run, run_dir)
    record = json.loads((run_dir / "run.json").read_text())
    record["choices"]["algo"] = "mine"
    (run_dir / "run.json").write_text(json.dumps(record))
    result = pgrun(f"rerun={run_dir}", cwd=tmp_path)
    assert result.returncode == 2
    assert one_error_line(result).startswith(f"pgrun: error: rerun={run_dir}: algo=mine is not one of ")


class WritesAFile:
    """A pickle payload that would create a file when unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_a_crafted_pickle_in_a_checkpoint_is_refused_not_executed(tmp_path, finished_run):
    run_dir = tmp_path / "run"
    os.system(f"cp -r {finished_run} {run_dir}")
    marker = tmp_path / "executed"
    crafted = run_dir / CHECKPOINT_DIR / "step_000000009999.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "payload": WritesAFile(marker)}, crafted)
    result = pgrun(f"resume={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"skipping checkpoint {crafted.name}: unreadable" in result.stderr
    assert "resuming" not in result.stderr and "has finished its 1,200 env steps" in result.stderr
    assert not marker.exists()


def test_a_checkpoint_of_another_pgrun_version_is_one_line_and_leaves_the_run_as_it_was(
    tmp_path, finished_run
):
    """A checkpoint whose layout this pgrun does not read (an older format) cannot continue
    the run exactly: one line saying so and how to start it again, exit 2, nothing changed."""
    run_dir = tmp_path / "run"
    os.system(f"cp -r {finished_run} {run_dir}")
    newest = checkpoint_files(run_dir)[-1]
    state = torch.load(newest, weights_only=True)
    torch.save(state | {"format": "pgrun-checkpoint-1"}, newest)
    before = snapshot(run_dir)
    result = pgrun(f"resume={run_dir}", "total_steps=2400", cwd=tmp_path)
    assert result.returncode == 2
    line = one_error_line(result)
    assert "was written by another version of pgrun (format pgrun-checkpoint-1" in line
    assert f"pgrun rerun={run_dir}" in line
    assert snapshot(run_dir) == before


def test_resume_of_something_that_is_not_a_run_is_one_line(tmp_path):
    result = pgrun(f"resume={tmp_path / 'nowhere'}", cwd=tmp_path)
    assert result.returncode == 2 and "not a pgrun run directory" in one_error_line(result)
    started = tmp_path / "started"
    (started / CHECKPOINT_DIR).mkdir(parents=True)
    (started / "run.json").write_text("{}")
    result = pgrun(f"resume={started}", cwd=tmp_path)
    assert result.returncode == 2 and "has no checkpoint to resume from" in one_error_line(result)


def test_step_counts_may_be_written_in_e_notation(tmp_path):
    result = pgrun(
        "algo=ppo", "algo.batch_size=4e2", "total_steps=1.2e3", "eval.every=6e2", "eval.episodes=2",
        "log.console=false", "hydra.run.dir=run", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["env_steps"] == 1200


def test_runs_named_in_the_same_second_get_a_dir_each_but_a_chosen_dir_is_not_renamed(tmp_path, monkeypatch):
    import datetime as real_datetime

    import hydra.core.utils

    import pgrun
    from pgrun.training.rundir import RunDirError

    class FrozenClock(real_datetime.datetime):
        """Every run starts in the same second (as runs launched together in a shell loop)."""

        @classmethod
        def now(cls, tz=None):
            return real_datetime.datetime(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr(hydra.core.utils, "datetime", FrozenClock)  # (Hydra's ${now:...} resolver)
    monkeypatch.chdir(tmp_path)
    first = pgrun.train(tiny("vpg"))
    second = pgrun.train([*tiny("vpg"), "algo.optim.lr=0.02"])
    assert first.run_dir == tmp_path / "outputs" / "2026-01-02" / "03-04-05_vpg_CartPole-v1_seed0"
    assert second.run_dir == first.run_dir.with_name(f"{first.run_dir.name}-2")
    assert second.config.algo.optim.lr == 0.02 and first.config.algo.optim.lr != 0.02
    assert json.loads((second.run_dir / "run.json").read_text())["config"]["algo"]["optim"]["lr"] == 0.02
    recorded = OmegaConf.load(second.run_dir / ".hydra" / "hydra.yaml").hydra  # (Hydra's record of the dir)
    assert recorded.run.dir == recorded.runtime.output_dir == str(second.run_dir)
    # a dir the user chose stays theirs: refused in one line, not renamed
    with pytest.raises(RunDirError, match="already holds a run"):
        pgrun.train(tiny("vpg"), run_dir=first.run_dir)
    for key in ("hydra.run.dir", "++hydra.run.dir"):
        with pytest.raises(RunDirError, match="already holds a run"):
            pgrun.train([*tiny("vpg"), f"{key}={first.run_dir}"])


def test_single_runs_through_hydras_app_named_in_the_same_second_get_a_dir_each(tmp_path, monkeypatch):
    """The `pgrun` command's other branch: a hydra.* key (here hydra.job.chdir) sends a single
    run through Hydra's app, which names the default dir itself; the second run of the second
    gets `-2`, as pgrun.train's runs do (the test above)."""
    import datetime as real_datetime
    import sys

    import hydra.core.utils

    from pgrun.cli.train import main

    class FrozenClock(real_datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return real_datetime.datetime(2026, 1, 2, 3, 4, 5)

    monkeypatch.setattr(hydra.core.utils, "datetime", FrozenClock)
    monkeypatch.chdir(tmp_path)
    for lr in ("0.01", "0.02"):
        arguments = [*tiny("vpg"), f"algo.optim.lr={lr}", "hydra.job.chdir=false"]
        monkeypatch.setattr(sys, "argv", ["pgrun", *arguments])
        main()
    first = tmp_path / "outputs" / "2026-01-02" / "03-04-05_vpg_CartPole-v1_seed0"
    second = first.with_name(f"{first.name}-2")
    assert sorted(path.name for path in first.parent.iterdir()) == [first.name, second.name]
    for run_dir, lr in ((first, 0.01), (second, 0.02)):
        assert json.loads((run_dir / "run.json").read_text())["config"]["algo"]["optim"]["lr"] == lr
        assert (run_dir / "summary.json").is_file()
