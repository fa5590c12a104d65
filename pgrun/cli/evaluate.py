"""The `pgrun-eval` command: evaluate a saved policy (a run dir's policy.pt, or while it has
none its newest checkpoint; or the file, policy or checkpoint) on fresh episodes, optionally
recording them as MP4 files.

By default it repeats the run's own final evaluation: the same env config, seed
(config.seed + EVAL_SEED_OFFSET, copy i reset with seed + i), number of episodes and
deterministic or sampled actions, through the same Evaluator, so its mean equals the run's
last logged eval/return."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from pgrun.cli import one_line
from pgrun.cli.one_line import OneLineParser
from pgrun.config import ConfigError, EnvConfig
from pgrun.errors import first_line

if TYPE_CHECKING:
    import numpy as np

    from pgrun.training.policy_file import SavedPolicy

PROG = "pgrun-eval"


def fail(message: str, status: int = 2) -> NoReturn:
    one_line.fail(PROG, message, status)


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=PROG,
        description="Evaluate a saved pgrun policy on fresh episodes; by default exactly as the run's "
        "own evaluation did (its env, seed, episodes and mode), so the mean repeats its last eval/return.",
    )
    p.add_argument(
        "path",
        type=Path,
        help="a run dir (its policy.pt, else its newest checkpoint), a policy file or a checkpoint",
    )
    p.add_argument(
        "--env",
        metavar="ID",
        help="evaluate on this env instead of the run's (forms as env.id: Id-v0, module:Id-v0, "
        "module:Class); made with its registered settings and the run's env.obs_keys and env.wrappers",
    )
    p.add_argument(
        "--episodes",
        type=int,
        metavar="N",
        help="episodes, one per env copy (default: the run's eval.episodes)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--stochastic", action="store_true", help="sample actions from the policy")
    mode.add_argument(
        "--deterministic", action="store_true", help="act with the mode (argmax / mean): the default"
    )
    p.add_argument(
        "--seed",
        type=int,
        metavar="S",
        help="reset copy i with seed + i (default: the seed of the run's last evaluation)",
    )
    p.add_argument("--video", action="store_true", help="record every episode as an MP4 (needs pgrun[video])")
    p.add_argument(
        "--video-dir",
        type=Path,
        metavar="DIR",
        help="where the MP4s go (default: the run dir's videos/, or beside a policy file given alone)",
    )
    p.add_argument("--json", action="store_true", help="print the results as one JSON object instead")
    return p


def env_config_of(saved_config: dict[str, Any], env_id: str | None) -> EnvConfig:
    """The run's env config (the keys this pgrun knows), or `env_id` with its registered
    settings and the run's env.obs_keys and env.wrappers (what the policy's input is made of)."""
    from pgrun.config.env_schema import saved_env_config

    if env_id is not None:
        env = saved_config["env"]
        return EnvConfig(id=env_id, obs_keys=env.get("obs_keys"), wrappers=list(env.get("wrappers", [])))
    return saved_env_config(saved_config["env"])


def summary_lines(
    env_id: str, seed: int, deterministic: bool, returns: np.ndarray, lengths: np.ndarray
) -> list[str]:
    n = len(returns)
    seeds = f"seed {seed:,}" if n == 1 else f"seeds {seed:,} to {seed + n - 1:,}"
    mode = "deterministic" if deterministic else "stochastic"
    spread = f"min {returns.min():.2f}, max {returns.max():.2f}"
    return [
        f"{env_id}: {n} episode{'s' * (n != 1)}, {mode}, {seeds}",
        f"return  {returns.mean():.2f} ± {returns.std():.2f}  ({spread})",
        f"length  {lengths.mean():.1f} ± {lengths.std():.1f}  (min {lengths.min()}, max {lengths.max()})",
        "lengths " + " ".join(str(length) for length in lengths),
    ]


def settings(
    args: argparse.Namespace, config: dict[str, Any], eval_seed: int | None = None
) -> tuple[int, bool, int]:
    """Episodes, deterministic or not, seed: as given, else as the run's last evaluation
    (`eval_seed`, recorded in the policy file; in older files the run's seed + 1,000,000,
    which every evaluation of those runs used)."""
    from pgrun.collection.evaluator import EVAL_SEED_OFFSET

    episodes = args.episodes if args.episodes is not None else int(config["eval"]["episodes"])
    if episodes < 1:
        raise ConfigError(f"--episodes={episodes} is not allowed: must be >= 1")
    chosen = args.stochastic or args.deterministic
    deterministic = not args.stochastic if chosen else bool(config["eval"]["deterministic"])
    if args.seed is not None:
        seed = args.seed
    else:
        seed = eval_seed if eval_seed is not None else int(config["seed"]) + EVAL_SEED_OFFSET
    return episodes, deterministic, seed


def check_fit(saved: SavedPolicy, env_config: EnvConfig, path: Path) -> None:
    """ConfigError unless the env's spaces fit the policy's; makes one copy to see them."""
    from pgrun.collection.envs import env_spaces

    problem = saved.mismatch(*env_spaces(env_config))
    if problem:
        raise ConfigError(f"env {env_config.id} does not fit the policy in {path}: {problem}")


def evaluate(args: argparse.Namespace) -> None:
    import torch

    from pgrun.collection.envs import make_vector_env, resolve_env_id
    from pgrun.collection.evaluator import Evaluator
    from pgrun.tracking.video import (
        check_rendering,
        recorded_file,
        recording,
        require_moviepy,
        video_env_config,
    )
    from pgrun.training.policy_file import POLICY_FILE, policy_path, read_policy
    from pgrun.training.rundir import CHECKPOINT_DIR, VIDEO_DIR

    path = policy_path(args.path)
    saved = read_policy(path)  # imports nothing the file names
    run_dir = path.parent.parent if path.parent.name == CHECKPOINT_DIR else path.parent
    if args.path.is_dir() and path.name != POLICY_FILE:
        why = "a run under way or stopped, or log.save_policy=false"
        newest = f"evaluating its newest checkpoint, {path.name}"
        print(f"{PROG}: {args.path} has no {POLICY_FILE} ({why}): {newest}", file=sys.stderr)
    env_config = env_config_of(saved.config, args.env)
    episodes, deterministic, seed = settings(args, saved.config, saved.eval_seed)
    if args.video:
        require_moviepy("--video")
        if env_config.vectorization == "native":
            print(
                f"{PROG}: warning: the run evaluated on {env_config.id}'s native vector env; recording needs "
                "copies made one by one, whose episodes start from other states: the returns may differ "
                "from its eval/return",
                file=sys.stderr,
            )
        env_config = video_env_config(env_config)
    whose = "given with --env" if args.env is not None else f"the env.id saved in {path.name}"
    print(f"{PROG}: making env {env_config.id} ({whose})", file=sys.stderr)
    resolve_env_id(env_config.id)  # imports the env's module, if it names one
    check_fit(saved, env_config, path)
    torch.set_num_threads(int(saved.config.get("torch_threads", 1)))  # as the run: the same kernels

    video_dir = args.video_dir if args.video_dir is not None else run_dir / VIDEO_DIR
    stamp = time.strftime("%Y%m%d-%H%M%S")

    def video_name(index: int) -> str:
        return f"eval-{stamp}-seed{seed + index}"

    if args.video:
        check_rendering(env_config, setting="--video")  # a ConfigError: one line, before any episode
        wrap = recording(video_dir, video_name)
        envs = make_vector_env(env_config, episodes, render_mode="rgb_array", wrap=wrap)
    else:
        envs = make_vector_env(env_config, episodes)
    try:
        returns, lengths = Evaluator(envs, saved.preprocessor, seed, deterministic).episodes(saved.policy)
    except Exception as error:  # the env's own failure: say so in one line, as pgrun does
        first = first_line(error)
        fail(f"the env {env_config.id!r} failed during evaluation: {type(error).__name__}: {first}", 1)
    finally:
        envs.close()
    videos = [str(recorded_file(video_dir, video_name(i))) for i in range(episodes)] if args.video else []
    if args.json:
        results = {"env": env_config.id, "episodes": episodes, "deterministic": deterministic, "seed": seed}
        results |= {"return_mean": float(returns.mean()), "return_std": float(returns.std())}
        results |= {"returns": returns.tolist(), "lengths": lengths.tolist(), "videos": videos}
        print(json.dumps(results))
        return
    print("\n".join(summary_lines(env_config.id, seed, deterministic, returns, lengths)))
    if videos:
        print(f"videos  {len(videos)} in {video_dir}")


def main() -> None:
    """Console entry point: bad input (a missing or foreign file, an env that does not fit
    the policy, a missing extra) ends in one line on stderr and exit 2."""
    args = parser().parse_args()
    from pgrun.training.policy_file import PolicyFileError

    try:
        evaluate(args)
    except (PolicyFileError, ConfigError) as error:
        fail(str(error))
    except KeyboardInterrupt:
        fail("interrupted", status=130)


if __name__ == "__main__":
    main()
