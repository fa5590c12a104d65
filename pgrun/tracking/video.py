"""Video of evaluation episodes: MP4 files written by gymnasium's RecordVideo (which needs
moviepy, the optional extra pgrun[video]) from env copies rendered headless (rgb_array)."""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import RecordVideo

from pgrun.collection.envs import make_vector_env, resolve_env_id
from pgrun.collection.evaluator import Evaluator
from pgrun.collection.normalization import ObservationPreprocessor
from pgrun.config import ConfigError, EnvConfig
from pgrun.errors import first_line
from pgrun.networks.policy import Policy

VIDEO_EXTRA = "pip install 'pgrun[video]'"
MUJOCO_GL_DEFAULT = "egl"
"""MuJoCo's headless OpenGL backend when MUJOCO_GL is unset: EGL (Mesa's libEGL, software
rendering without a GPU) works on a machine without a display; osmesa needs libOSMesa"""


def require_moviepy(what: str) -> None:
    """ConfigError (one line naming the extra) unless moviepy can be imported."""
    try:
        import moviepy  # noqa: F401
    except ImportError as error:
        raise ConfigError(f"{what} needs moviepy, which is not installed: {VIDEO_EXTRA}") from error


def prepare_rendering(env_id: str) -> None:
    """Before an env renders headless: MuJoCo envs get MUJOCO_GL=egl unless it is set
    (gymnasium would otherwise try GLFW first, which needs a display); pygame (which draws
    the classic-control envs, and which moviepy starts to encode TensorBoard's clips) gets
    SDL's dummy video and audio drivers unless set, instead of probing for a display and a
    sound card (and printing errors about them)."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    if "mujoco" in str(gym.spec(resolve_env_id(env_id)).entry_point):
        os.environ.setdefault("MUJOCO_GL", MUJOCO_GL_DEFAULT)
        # PyOpenGL logs at INFO that it has no accelerator module: Hydra would print it
        logging.getLogger("OpenGL").setLevel(logging.WARNING)


class FrameTap(gym.Wrapper):
    """Keeps a copy of every frame `render()` returns, for a recorder above it that needs them
    too: shrunk by a whole stride to at most `max_width` pixels wide (None: full size), so
    that a long MuJoCo clip is not held in memory at full size twice."""

    def __init__(self, env: gym.Env, max_width: int | None = None) -> None:
        super().__init__(env)
        self.max_width = max_width
        self.frames: list[np.ndarray] = []

    def render(self) -> np.ndarray:
        frame = self.env.render()
        stride = 1 if self.max_width is None else -(-frame.shape[1] // self.max_width)
        self.frames.append(np.array(frame[::stride, ::stride]))
        return frame


def follow_the_agent(env: gym.Env) -> gym.Env:
    """A MuJoCo env rendered through its model's `track` camera (mode trackcom: beside the
    agent, following its centre of mass), where the model has one and the user chose no
    camera (env.kwargs camera_name or camera_id). gymnasium renders with a free camera at
    `default_camera_config`, which stays where it was put (it forces the camera type to
    free at every frame, so even the trackbodyid of Hopper and Walker2d tracks nothing):
    a runner leaves the frame within a second. Models without a track camera (the
    pendulums, on their rails) and other envs are left alone."""
    renderer = getattr(env.unwrapped, "mujoco_renderer", None)
    if renderer is None or renderer.camera_id != -1:
        return env
    import mujoco

    track = mujoco.mj_name2id(renderer.model, mujoco.mjtObj.mjOBJ_CAMERA, "track")
    if track != -1:
        renderer.camera_id = track
    return env


def recording(folder: Path, name: Callable[[int], str]) -> Callable[[gym.Env, int], gym.Env]:
    """A `wrap` for make_vector_env: copy i records its first episode to folder/<name(i)>.mp4
    (RecordVideo: the frame after reset, then one per step), its camera following the agent
    (`follow_the_agent`). Later episodes of the copy are not recorded."""

    def wrap(env: gym.Env, index: int) -> gym.Env:
        env = follow_the_agent(env)
        with warnings.catch_warnings():  # that videos already are in the folder is expected
            warnings.filterwarnings("ignore", message=".*Overwriting existing videos")
            return RecordVideo(
                env, str(folder), episode_trigger=lambda episode: episode == 0, name_prefix=name(index)
            )

    return wrap


def check_rendering(config: EnvConfig, setting: str = "eval.video=true") -> None:
    """ConfigError (one line, starting with `setting`, the option that asked for video) unless
    the env renders a frame headless: run before a training with eval.video starts (and
    before pgrun-eval --video), so that an env without render_mode, or a machine without the
    OpenGL a MuJoCo env needs, is found at once rather than at the first clip."""
    prepare_rendering(config.id)
    frames = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gymnasium's own notes on the same failure
            envs = make_vector_env(video_env_config(config), 1, render_mode="rgb_array")
            try:
                envs.reset(seed=0)
                frames = envs.call("render")
            finally:
                envs.close()
    except Exception as error:
        reason = first_line(error.__cause__ or error)
        raise ConfigError(f"{setting}: env {config.id!r} cannot render a frame: {reason}") from error
    if not isinstance(frames[0], np.ndarray):
        raise ConfigError(f"{setting}: env {config.id!r} renders no rgb_array frame ({frames[0]!r})")


def recorded_file(folder: Path, name: str) -> Path:
    """The MP4 RecordVideo wrote for a copy's first episode, renamed to folder/<name>.mp4."""
    written = folder / f"{name}-episode-0.mp4"
    return written.replace(folder / f"{name}.mp4")


def video_env_config(config: EnvConfig) -> EnvConfig:
    """The env config, with copies made one by one in this process (sync): a native vector
    env cannot be wrapped per copy (and its copies start from other states than sync ones
    with the same seed); async copies would record in their workers, for nothing gained
    (they step as sync ones do)."""
    return dataclasses.replace(config, vectorization="sync")


def record_episode(
    config: EnvConfig,
    policy: Policy,
    preprocessor: ObservationPreprocessor,
    seed: int,
    deterministic: bool,
    path: Path,
    max_width: int | None = None,
) -> tuple[np.ndarray, int]:
    """Run one evaluation episode as Evaluator does (reset with `seed`, torch RNG forked, so
    a training's random streams are untouched) on an env copy of its own, rendered as
    rgb_array, and write it to `path` (.mp4, full size). Returns its frames [T + 1, H, W, 3]
    uint8 (the frame after reset, then one per step), at most `max_width` wide (None: full
    size), and their frames per second."""
    prepare_rendering(config.id)
    recorders: list[RecordVideo] = []

    def wrap(env: gym.Env, index: int) -> gym.Env:
        recorders.append(recording(path.parent, lambda _: path.stem)(FrameTap(env, max_width), index))
        return recorders[-1]

    envs = make_vector_env(video_env_config(config), 1, render_mode="rgb_array", wrap=wrap)
    try:
        Evaluator(envs, preprocessor, seed, deterministic).episodes(policy)
    finally:
        envs.close()
    recorded_file(path.parent, path.stem)
    return np.stack(recorders[0].env.frames), int(recorders[0].frames_per_sec)
