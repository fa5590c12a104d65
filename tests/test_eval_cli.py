"""`pgrun-eval` and video, run for real: a short CartPole run trained with the `pgrun` command,
re-evaluated from its run dir and its policy file, recorded as MP4 files, and recorded
during training into TensorBoard."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import imageio
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tests_support import learning_rows, main_runner, metrics, pgrun

from pgrun.cli import evaluate as eval_cli
from pgrun.collection.evaluator import Evaluator
from pgrun.collection.normalization import ObservationPreprocessor
from pgrun.config import Config, EnvConfig, PolicyConfig, as_plain_dict
from pgrun.networks.policy import make_policy
from pgrun.training.policy_file import save_policy

PGRUN_EVAL = str(Path(sys.executable).parent / "pgrun-eval")
RUN = [
    "algo=ppo", "env=cartpole", "env.vectorization=sync", "env.normalize_obs=true", "total_steps=6144",
    "eval.every=2048", "eval.episodes=4", "log.console=false",
]  # fmt: skip
"""shipped PPO on CartPole (its tuned preset) with one env copy per process step and
observation normalization: three evaluations of 4 episodes, ~5 s"""
CARTPOLE_FRAME = (400, 600, 3)


def pgrun_eval(*args: str, cwd: Path, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PGRUN_EVAL, *map(str, args)],
        cwd=cwd,
        env=dict(os.environ) | (extra_env or {}),
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def evaluated(*args, cwd: Path) -> dict:
    result = pgrun_eval(*args, "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def run_main(monkeypatch, capsys):
    """pgrun-eval's main() in this process (no interpreter start-up): (exit code, stdout, stderr)."""
    return main_runner(monkeypatch, capsys, "pgrun-eval", eval_cli.main)


@pytest.fixture
def report(run_main):
    """pgrun-eval --json ..., in this process."""

    def run(*args) -> dict:
        result = run_main(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    return run


def train(tmp_path: Path, name: str, *overrides: str) -> Path:
    run_dir = tmp_path / name
    result = pgrun(*RUN, *overrides, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return run_dir


def one_error_line(result: subprocess.CompletedProcess, *words: str) -> str:
    """The last stderr line: pgrun-eval's one-line error with `words`, exit 2, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert lines[-1].startswith("pgrun-eval: error: ") and "Traceback" not in result.stderr, result.stderr
    assert all(word in lines[-1] for word in words), lines[-1]
    return lines[-1]


def written_frames(recorded: int, fps: int = 50) -> int:
    """How many frames moviepy 1.0.3 writes for `recorded` images: one per t in
    arange(0, duration, 1/fps), where its duration is a float sum of `recorded` 1/fps terms,
    which can exceed recorded/fps by a rounding error and so repeat a frame (170 -> 171)."""
    return len(np.arange(0, sum([1.0 / fps] * recorded), 1.0 / fps))


def decoded(path: Path) -> np.ndarray:
    with imageio.get_reader(path, format="ffmpeg") as reader:  # (its len() is inf: list() would fail)
        return np.stack([frame for frame in reader])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return train(tmp_path_factory.mktemp("eval"), "run")


@pytest.mark.slow
def test_a_run_dir_evaluates_to_its_last_logged_eval_return(run_dir):
    result = pgrun_eval(run_dir, "--json", cwd=run_dir.parent)
    assert result.returncode == 0, result.stderr
    # one line on stderr, naming the env before making it
    assert result.stderr.strip().splitlines() == [
        "pgrun-eval: making env CartPole-v1 (the env.id saved in policy.pt)"
    ]
    numbers = json.loads(result.stdout)
    last = metrics(run_dir)[-1]
    # the seed of the run's last evaluation: fresh starts, one seed per evaluation
    evaluations = sum("eval/return" in row for row in metrics(run_dir))
    seed = Evaluator(None, None, 1_000_000, True, fresh_starts=True).seed_for(evaluations - 1)
    # the same evaluator, seed, episodes and (saved, frozen) observation statistics as the run's
    assert numbers["return_mean"] == last["eval/return"]
    assert numbers["return_std"] == last["eval/return_std"]
    assert numbers["seed"] == seed and numbers["episodes"] == 4 and numbers["deterministic"]
    assert numbers["lengths"] == numbers["returns"]  # CartPole: +1 per step
    text = pgrun_eval(run_dir, cwd=run_dir.parent)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    returns, lengths = numbers["returns"], numbers["lengths"]
    spread = f"min {min(returns):.2f}, max {max(returns):.2f}"
    assert lines == [
        f"CartPole-v1: 4 episodes, deterministic, seeds {seed:,} to {seed + 3:,}",
        f"return  {np.mean(returns):.2f} ± {np.std(returns):.2f}  ({spread})",
        f"length  {np.mean(lengths):.1f} ± {np.std(lengths):.1f}  (min {min(lengths)}, max {max(lengths)})",
        "lengths " + " ".join(map(str, lengths)),
    ]


@pytest.mark.slow
def test_episodes_seed_and_stochastic_change_what_they_should(run_dir, report):
    default = report(run_dir)
    # copy i is reset with seed + i: fewer episodes are the first ones of the default evaluation
    two = report(run_dir, "--episodes", 2)
    assert two["returns"] == default["returns"][:2] and two["episodes"] == 2
    shifted = report(run_dir, "--seed", default["seed"] + 1, "--episodes", 2)
    assert shifted["returns"] == default["returns"][1:3] and shifted["seed"] == default["seed"] + 1
    stochastic = report(run_dir, "--stochastic")
    assert not stochastic["deterministic"] and stochastic["returns"] != default["returns"]
    assert report(run_dir, "--stochastic")["returns"] == stochastic["returns"]  # seeded sampling


@pytest.mark.slow
def test_a_policy_file_and_an_env_override(run_dir, tmp_path, run_main, report):
    policy = run_dir / "policy.pt"
    assert report(policy) == report(run_dir)
    # a file naming an env module that does not exist: pgrun-eval says which env it makes
    # before importing anything, --env replaces it, and nothing the file names is needed
    payload = torch.load(policy, weights_only=True)
    payload["config"]["env"]["id"] = "no_such_module_xyz:Env"
    foreign = tmp_path / "foreign.pt"
    torch.save(payload, foreign)
    overridden = run_main(foreign, "--env", "CartPole-v1", "--json")
    assert overridden.returncode == 0, overridden.stderr
    assert overridden.stderr.splitlines() == ["pgrun-eval: making env CartPole-v1 (given with --env)"]
    assert json.loads(overridden.stdout) == report(run_dir)
    missing = run_main(foreign)
    assert missing.stderr.splitlines()[0] == (
        "pgrun-eval: making env no_such_module_xyz:Env (the env.id saved in foreign.pt)"
    )
    one_error_line(missing, "cannot import module 'no_such_module_xyz'")


@pytest.mark.slow
def test_a_checkpoint_holds_the_policy_and_stands_in_for_a_missing_policy_file(
    run_dir, tmp_path, run_main, report
):
    import pgrun

    # the checkpoint written at the run's end holds the policy of its policy.pt
    last = sorted((run_dir / "checkpoints").glob("*.pt"))[-1]
    assert report(last, "--seed", 7) == report(run_dir, "--seed", 7)
    # a run dir without policy.pt (a run under way or interrupted): its newest checkpoint, said so
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run_dir, unfinished)
    (unfinished / "policy.pt").unlink()
    result = run_main(unfinished, "--seed", 7, "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        f"pgrun-eval: {unfinished} has no policy.pt (a run under way or stopped, or log.save_policy=false): "
        f"evaluating its newest checkpoint, {last.name}"
    )
    assert json.loads(result.stdout) == report(run_dir, "--seed", 7)
    observations = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    assert (pgrun.load(unfinished).act(observations) == pgrun.load(run_dir).act(observations)).all()
    # a checkpoint of an older pgrun, which did not save the spaces: one env copy tells them
    older = torch.load(last, weights_only=True)
    del older["spaces"]
    torch.save(older, tmp_path / last.name)
    assert report(tmp_path / last.name, "--seed", 7) == report(run_dir, "--seed", 7)


@pytest.mark.slow
def test_bad_paths_files_and_envs_end_in_one_line_with_exit_2(run_dir, tmp_path, run_main, monkeypatch):
    one_error_line(run_main(tmp_path / "absent"), "absent: no such run dir, policy file or checkpoint")
    (tmp_path / "empty_run").mkdir()
    one_error_line(run_main(tmp_path / "empty_run"), "holds no policy.pt and no checkpoint")
    noise = tmp_path / "noise.pt"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    one_error_line(run_main(noise), "noise.pt: not a readable pgrun policy file")
    tensors = tmp_path / "tensors.pt"
    torch.save({"weights": torch.zeros(3)}, tensors)
    one_error_line(run_main(tensors), "tensors.pt: not a pgrun policy file", "missing")
    checkpoint = torch.load(sorted((run_dir / "checkpoints").glob("*.pt"))[-1], weights_only=True)
    del checkpoint["rule"]["policy"]
    torch.save(checkpoint, tmp_path / "step_000000000001.pt")
    one_error_line(
        run_main(tmp_path / "step_000000000001.pt"), "not a readable pgrun checkpoint (missing 'policy')"
    )
    one_error_line(
        run_main(run_dir, "--env", "Pendulum-v1"),
        "env Pendulum-v1 does not fit the policy",
        "observation space is Box of shape (3,), the policy's is Box of shape (4,)",
    )
    one_error_line(run_main(run_dir, "--env", "CartPol-v1"), "did you mean CartPole-v1")
    one_error_line(run_main(run_dir, "--episodes", 0), "--episodes=0")
    one_error_line(run_main(run_dir, "--stochastic", "--deterministic"), "not allowed with argument")
    monkeypatch.setitem(sys.modules, "moviepy", None)  # as if not installed: importing it fails
    one_error_line(run_main(run_dir, "--video"), "--video needs moviepy", "pip install 'pgrun[video]'")


@pytest.mark.slow
def test_video_records_each_episode_as_an_mp4_of_the_render_size(run_dir, tmp_path, report):
    plain = report(run_dir, "--episodes", 2)
    recorded = evaluated(run_dir, "--episodes", 2, "--video", "--video-dir", tmp_path / "clips", cwd=tmp_path)
    assert recorded["returns"] == plain["returns"]  # recording does not change the episodes
    videos = [Path(path) for path in recorded["videos"]]
    assert sorted(videos) == sorted((tmp_path / "clips").glob("*.mp4")) and len(videos) == 2
    for index, (video, length) in enumerate(zip(videos, recorded["lengths"], strict=True)):
        assert video.name.startswith("eval-") and video.name.endswith(f"-seed{plain['seed'] + index}.mp4")
        frames = decoded(video)
        # RecordVideo keeps the frame after reset and one per step
        assert frames.shape == (written_frames(length + 1), *CARTPOLE_FRAME)
        assert frames.std() > 0  # a picture, not a blank
    # by default, into the run dir
    evaluated(run_dir, "--episodes", 1, "--video", cwd=tmp_path)
    assert len(list((run_dir / "videos").glob(f"eval-*-seed{plain['seed']}.mp4"))) == 1


@pytest.mark.slow
def test_training_with_video_but_without_moviepy_stops_before_it_starts(tmp_path):
    blocker = tmp_path / "blocker" / "moviepy"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('no moviepy here')\n")
    hidden = {"PYTHONPATH": f"{blocker.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = pgrun(
        *RUN, "eval.video=true", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, extra_env=hidden
    )
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "pgrun: error: eval.video=true needs moviepy, which is not installed: pip install 'pgrun[video]'"
    ]
    assert not (tmp_path / "run").exists()  # no run dir left behind


@pytest.mark.slow
def test_video_during_training_goes_to_tensorboard_and_a_file_and_changes_no_metric(
    run_dir, tmp_path, report
):
    video_run = train(tmp_path, "video_run", "eval.video=true", "eval.video_every=4096")
    assert learning_rows(video_run) == learning_rows(run_dir)  # same seed, same training and evals
    assert "time/video" in metrics(video_run)[-1]
    # at the first evaluation at or after 4096 env steps, and at the last one
    videos = sorted((video_run / "videos").glob("*.mp4"))
    assert [video.name for video in videos] == ["eval-step000004096.mp4", "eval-step000006144.mp4"]
    # the recorded episode is the evaluation's first: its copy, reset with the eval seed
    final_length = report(video_run, "--episodes", 1)["lengths"][0]
    assert decoded(videos[-1]).shape == (written_frames(final_length + 1), *CARTPOLE_FRAME)
    events = EventAccumulator(str(video_run), size_guidance={"images": 0})
    events.Reload()
    clips = events.Images("eval/video")
    assert [clip.step for clip in clips] == [4096, 6144]
    # shrunk to at most 320 pixels wide for TensorBoard; an animated GIF
    assert (clips[-1].width, clips[-1].height) == (300, 200)
    assert clips[-1].encoded_image_string[:6] == b"GIF89a"


def test_an_env_that_fails_during_the_evaluation_ends_it_in_one_line_with_exit_1(tmp_path, run_main):
    # a policy for the tests' corridor, saved with the config of a copy that raises at its third step
    encoder = ObservationPreprocessor(gym.spaces.Discrete(4))
    architecture = PolicyConfig(hidden_sizes=[8])
    policy = make_policy(encoder.dim, gym.spaces.Discrete(2), architecture)
    env = EnvConfig(id="faulty_envs:CrashingCorridor-v0", kwargs={"healthy_steps": 2})
    path = tmp_path / "policy.pt"
    save_policy(
        path, policy, as_plain_dict(Config(env=env, policy=architecture)), encoder, gym.spaces.Discrete(2)
    )
    result = run_main(path, "--episodes", 1)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "pgrun-eval: error: the env 'faulty_envs:CrashingCorridor-v0' failed during evaluation: "
        "RuntimeError: the simulator lost its licence server"
    )


@pytest.mark.parametrize(
    ("env_id", "words"),
    [
        ("corridor_env:Corridor", "cannot render a frame: Corridor.__init__() got an unexpected keyword"),
        ("faulty_envs:FramelessCorridor-v0", "renders no rgb_array frame (None)"),
    ],
)
def test_video_of_an_env_that_cannot_render_is_one_line_before_any_episode(env_id, words, tmp_path, run_main):
    """An env without render_mode, or one that renders None: --video says so in one line
    (the second was a traceback once the episodes had run) and writes no video folder."""
    encoder = ObservationPreprocessor(gym.spaces.Discrete(4))
    architecture = PolicyConfig(hidden_sizes=[8])
    policy = make_policy(encoder.dim, gym.spaces.Discrete(2), architecture)
    env = EnvConfig(id=env_id, max_episode_steps=20)
    path = tmp_path / "policy.pt"
    save_policy(
        path, policy, as_plain_dict(Config(env=env, policy=architecture)), encoder, gym.spaces.Discrete(2)
    )
    result = run_main(path, "--video", "--episodes", 1)
    one_error_line(result, f"--video: env '{env_id}' ", words)
    assert not (tmp_path / "videos").exists()


def test_a_recorded_episode_keeps_only_small_frames_and_writes_the_mp4_full_size(tmp_path):
    """The frames handed back for TensorBoard are shrunk as they are rendered (a long MuJoCo clip
    is not held at full size next to RecordVideo's own copy); the MP4 keeps the render size."""
    from pgrun.tracking.video import record_episode

    encoder = ObservationPreprocessor(gym.spaces.Box(-np.inf, np.inf, (4,), dtype=np.float32))
    policy = make_policy(encoder.dim, gym.spaces.Discrete(2), PolicyConfig())
    env = EnvConfig(id="CartPole-v1", max_episode_steps=30)
    path = tmp_path / "clip.mp4"
    small, fps = record_episode(env, policy, encoder, seed=0, deterministic=True, path=path, max_width=320)
    full, _ = record_episode(env, policy, encoder, seed=0, deterministic=True, path=tmp_path / "full.mp4")
    assert small.shape[1:] == (200, 300, 3) and full.shape[1:] == (*CARTPOLE_FRAME[:2], 3)
    assert len(small) == len(full) and np.array_equal(small, full[:, ::2, ::2])  # the same episode
    assert decoded(path).shape[1:] == CARTPOLE_FRAME and fps == 50


def test_another_env_keeps_what_the_policys_input_is_made_of():
    """--env: the new env's registered settings, but the run's obs_keys and wrappers (a MiniGrid
    policy evaluated on a larger room still reads only the image and the direction)."""
    from pgrun.cli.evaluate import env_config_of

    saved = {"env": {"id": "MiniGrid-DoorKey-5x5-v0", "num_envs": 8, "obs_keys": ["image", "direction"]}}
    saved["env"]["wrappers"] = ["my_pkg:Wrap"]
    other = env_config_of(saved, "MiniGrid-DoorKey-6x6-v0")
    assert (other.id, other.obs_keys, other.wrappers) == (
        "MiniGrid-DoorKey-6x6-v0",
        ["image", "direction"],
        ["my_pkg:Wrap"],
    )
    assert other.num_envs == EnvConfig(id="x").num_envs  # the rest as registered, not as the run had it
