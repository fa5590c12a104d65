"""`pgrun --help`: pgrun's own page, built from the config files without composing a config.

Hydra's help page lists every config group by composing each (seconds of deep copies) and
shows internal schema groups; this one reads configs/ directly and answers at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

import pgrun
from pgrun.config.files import default_choices

COMMON_KEYS = (
    ("seed", "random seed of the run (envs, torch, numpy)"),
    ("total_steps", "env steps to train for"),
    ("target_return", "eval return counted as solved (time to target in summary.json)"),
    ("eval.every", "env steps between deterministic evaluations"),
    ("eval.episodes", "episodes per evaluation"),
    ("policy.hidden_sizes", "hidden layers of the policy network"),
    ("checkpoint.every", "env steps between checkpoints (resume=RUN_DIR continues from the newest)"),
    ("eval.video", "record an evaluation episode (MP4, TensorBoard) every eval.video_every steps"),
    ("log.tensorboard", "write TensorBoard event files"),
    ("log.wandb", "also log to Weights & Biases (pip install 'pgrun[wandb]')"),
    ("torch_threads", "torch's intra-op threads"),
)

EXAMPLES = (
    ("pgrun algo=ppo env=cartpole", "PPO on CartPole-v1"),
    ("pgrun algo=trpo env=hopper seed=1", "TRPO on Hopper-v5, with its tuned preset"),
    ("pgrun algo=rtg env.id=MountainCar-v0", "any gymnasium id"),
    ("pgrun algo=ppo algo.optim.lr=1e-3 algo.epochs=4", "change an algorithm's key"),
    ("pgrun -m algo=vpg,rtg seed=0,1,2", "a sweep: 6 runs, one after the other"),
    ("pgrun -m seed=0,1 hydra/launcher=joblib", "the same, in parallel processes"),
    ("pgrun resume=outputs/.../RUN_DIR", "continue an interrupted run exactly"),
    ("pgrun-plot outputs/multirun/...", "learning curves and a table of a sweep"),
    ("pgrun-eval outputs/.../RUN_DIR --video", "re-evaluate a trained policy, record MP4s"),
    ("pgrun-variance outputs/.../RUN_DIR", "variance and bias of each gradient estimator"),
)


def first_sentence(path: Path) -> str:
    """The first sentence of the comment that opens a config file ('' without one)."""
    comment = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        comment.append(line.lstrip("#").strip())
    text = " ".join(comment)
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def choices(group: Path, describe: Callable[[Path], str]) -> list[str]:
    """One line per config file of a group: its name and what it is."""
    width = max(len(path.stem) for path in group.glob("*.yaml"))
    return [f"  {path.stem:<{width}}  {describe(path)}" for path in sorted(group.glob("*.yaml"))]


def env_line(path: Path) -> str:
    """`CartPole-v1`, or the env's id and the first sentence of its comment."""
    env_id = OmegaConf.load(path).get("id", "")
    sentence = first_sentence(path)
    return sentence if sentence.startswith(env_id) else f"{env_id}  {sentence}".rstrip()


def default_of(config: DictConfig, key: str) -> Any:
    """The plain value at a dotted key of configs/config.yaml."""
    value = OmegaConf.select(config, key)
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def help_page(config_dir: Path) -> str:
    """The page: usage, the algorithm and env choices, common keys with their defaults,
    examples, where output goes."""
    defaults = OmegaConf.load(config_dir / "config.yaml")
    chosen = default_choices(config_dir)
    settings = [(f"{key}={json.dumps(default_of(defaults, key))}", meaning) for key, meaning in COMMON_KEYS]
    key_width = max(len(setting) for setting, _ in settings)
    settings.append(("algo.KEY=..., env.KEY=...", "the chosen algorithm's and env's own keys: see --cfg job"))
    keys = [f"  {setting:<{key_width}}  {meaning}" for setting, meaning in settings]
    example_width = max(len(command) for command, _ in EXAMPLES)
    examples = [f"  {command:<{example_width}}  # {what}" for command, what in EXAMPLES]
    return "\n".join(
        [
            f"pgrun {pgrun.__version__}: policy-gradient reinforcement learning experiments",
            "",
            "Usage:",
            "  pgrun [KEY=VALUE ...]               train one run (keys and groups below; Hydra overrides)",
            "  pgrun -m KEY=A,B ... [KEY=VALUE]    a sweep over every combination",
            "  pgrun resume=RUN_DIR [total_steps=N]  continue an interrupted run from its newest checkpoint",
            "  pgrun rerun=RUN_DIR [KEY=VALUE ...]   a new run with a finished run's config",
            "",
            f"Algorithms (algo=NAME, default {chosen.get('algo')}):",
            *choices(config_dir / "algo", first_sentence),
            "",
            f"Environments (env=NAME, default {chosen.get('env')}; or env.id=ANY_GYMNASIUM_ID,"
            " env.id=my_module:MyEnv):",
            *choices(config_dir / "env", env_line),
            "",
            "Common keys (with their defaults):",
            *keys,
            "",
            "Examples:",
            *examples,
            "",
            "Output: one run dir per run, outputs/DATE/TIME_ALGO_ENV_seedN/ (hydra.run.dir=... to choose):",
            "  metrics.jsonl, TensorBoard events, policy.pt, checkpoints/, run.json, summary.json.",
            "  Tuned presets (configs/tuned/ALGO_ENV.yaml) apply by themselves to their env group's own env;",
            "  command-line keys win over them.",
            "",
            "The full config of a command: pgrun [KEY=VALUE ...] --cfg job",
            "Hydra's own options (launchers, sweepers, shell completion): pgrun --hydra-help",
        ]
    )
