"""Weights & Biases (log.wandb=true) in offline mode: the offline run file holds what the
run logged, read back from W&B's own file format."""

import json
from pathlib import Path

import pytest
from tests_support import metrics, pgrun, tiny, wandb_records

OFFLINE = {"WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def history(run_dir: Path) -> list[dict]:
    """The rows the run logged to W&B, as {key: value}, W&B's own bookkeeping (_step, ...) left out."""
    [run_file] = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    return history_of(run_file)


def history_of(run_file: Path) -> list[dict]:
    """The rows of one W&B offline run file."""
    rows = []
    for record in wandb_records(run_file):
        if record.WhichOneof("record_type") == "history":
            items = {
                "/".join(item.nested_key) or item.key: json.loads(item.value_json)
                for item in record.history.item
            }
            rows.append({key: value for key, value in items.items() if not key.startswith("_")})
    return rows


def run_record(run_dir: Path):
    """The first `run` record of the run's offline file: its name, group and config."""
    [run_file] = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    return next(record.run for record in wandb_records(run_file) if record.WhichOneof("record_type") == "run")


def config_of(run) -> dict:
    return {item.key: json.loads(item.value_json) for item in run.config.update}


@pytest.mark.slow
def test_offline_run_holds_the_same_scalars_against_env_steps_and_the_config(tmp_path):
    result = pgrun(
        *tiny("ppo"), "env=cartpole", "log.wandb=true", "hydra.run.dir=run", cwd=tmp_path, extra_env=OFFLINE
    )
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "run"
    logged = metrics(run_dir)
    assert len(logged) == 3
    sent = history(run_dir)
    assert [row.pop("env_step") for row in sent] == [row.pop("step") for row in logged]
    assert sent == logged  # every scalar, with the value metrics.jsonl has
    run = run_record(run_dir)
    assert run.display_name == "run" and run.project == "pgrun" and run.run_group == ""
    config = config_of(run)
    assert config["algorithm"] == "ppo" and config["env"]["id"] == "CartPole-v1"
    assert config["algo"]["batch_size"] == 400


@pytest.mark.slow
def test_a_sweeps_jobs_share_a_group_and_a_project_can_be_chosen(tmp_path):
    result = pgrun(
        "-m", *tiny("vpg"), "seed=0,1", "log.wandb=true", "log.wandb_project=studies",
        "hydra.sweep.dir=sweep", cwd=tmp_path, extra_env=OFFLINE,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    runs = [run_record(job) for job in sorted((tmp_path / "sweep").glob("*seed=*"))]
    assert len(runs) == 2
    assert {run.run_group for run in runs} == {"sweep"} and {run.project for run in runs} == {"studies"}
    assert [config_of(run)["seed"] for run in runs] == [0, 1]


def test_without_wandb_installed_one_line_and_no_run_dir(tmp_path):
    """`import wandb` failing (the extra not installed): one line naming the extra, exit 2,
    and the run dir it would have used is not left behind."""
    shadow = tmp_path / "shadow" / "wandb"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named wandb')\n")
    result = pgrun(*tiny("vpg"), "log.wandb=true", "hydra.run.dir=run", cwd=tmp_path, tests_dir=shadow.parent)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line == (
        "pgrun: error: log.wandb=true needs the wandb package: "
        "pip install 'pgrun[wandb]' (or log.wandb=false)"
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_evaluation_videos_reach_wandb_as_mp4_files(tmp_path):
    result = pgrun(
        *tiny("vpg"), "log.wandb=true", "eval.video=true", "eval.video_every=600", "hydra.run.dir=run",
        cwd=tmp_path, extra_env=OFFLINE,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "run"
    clips = [row for row in history(run_dir) if "eval/video/path" in row]  # media rows: nested keys
    recorded = sorted((run_dir / "videos").glob("*.mp4"))
    assert len(clips) == len(recorded) >= 2
    assert {clip["eval/video/_type"] for clip in clips} == {"video-file"}
    assert [clip["env_step"] for clip in clips] == [
        int(path.stem.removeprefix("eval-step")) for path in recorded
    ]
    for clip in clips:  # the MP4 itself is in the offline run, full size
        [media] = run_dir.glob(f"wandb/offline-run-*/files/{clip['eval/video/path']}")
        assert media.suffix == ".mp4" and (clip["eval/video/width"], clip["eval/video/height"]) == (600, 400)


def test_wandb_that_cannot_start_a_run_is_one_line_and_leaves_no_run_dir(tmp_path):
    """Online mode without a login (no API key; no terminal to ask for one): W&B refuses
    before any network call; pgrun says how to log in or go offline, exit 2, no run dir."""
    home = tmp_path / "home"
    home.mkdir()
    no_login = {"WANDB_MODE": "online", "WANDB_API_KEY": "", "HOME": str(home), "WANDB_CONFIG_DIR": str(home)}
    result = pgrun(*tiny("vpg"), "log.wandb=true", "hydra.run.dir=run", cwd=tmp_path, extra_env=no_login)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert (
        line.startswith("pgrun: error: log.wandb=true: W&B could not start a run (") and "wandb login" in line
    )
    assert "WANDB_MODE=offline" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_resumed_run_continues_its_wandb_run_without_logging_a_step_twice(tmp_path):
    """Resumed from a checkpoint older than its last logged row (the newest one removed),
    the run repeats steps W&B already has: it sends only the steps past them, to the same
    W&B run, so W&B's history has every step once, as metrics.jsonl does."""
    run_dir = tmp_path / "run"
    first = pgrun(
        *tiny("ppo"), "checkpoint.every=400", "log.wandb=true", f"hydra.run.dir={run_dir}",
        cwd=tmp_path, extra_env=OFFLINE,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    (run_dir / "checkpoints" / "step_000000001200.pt").unlink()  # resume from env step 800
    resumed = pgrun(f"resume={run_dir}", "total_steps=1600", cwd=tmp_path, extra_env=OFFLINE)
    assert resumed.returncode == 0 and "from step_000000000800.pt" in resumed.stderr, resumed.stderr
    sessions = sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(sessions) == 2 and len({path.name for path in sessions}) == 1  # one W&B run id
    steps = [
        row["env_step"]
        for path in sessions
        for row in history_of(path)
        if "eval/return" in row or "train/loss" in row
    ]
    assert steps == [row["step"] for row in metrics(run_dir)] == [400, 800, 1200, 1600]
