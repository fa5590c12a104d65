"""pgrun: a command-line experiment runner for policy-gradient reinforcement learning.

The commands are `pgrun`, `pgrun-eval`, `pgrun-plot` and `pgrun-variance`; from Python (pgrun.api):

    import pgrun
    result = pgrun.train(["algo=ppo", "env=cartpole", "total_steps=20000"])
    agent = pgrun.load(result.run_dir)
    action = agent.act(observation)

The package's layers, top to bottom (each imports only those below it; .importlinter checks it):
    cli            the commands
    variance       the variance lab (pgrun-variance, pgrun.measure_variance)
    api            the Python API
    training       the run's lifecycle: builder, loop, callbacks, checkpoints, run dir
    tracking       logger, W&B, video          algorithms   update rules, losses, optimizers
    collection     envs, collector, evaluator  estimation   returns, advantages, weights
    networks       policies, distributions, encoders, value networks
    config, batch, errors, lazy                 (analysis reads run dirs only)
Importing pgrun imports none of them: the API's names are loaded when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

API = {
    "train": "pgrun.api",
    "resume": "pgrun.api",
    "load": "pgrun.api",
    "config_of": "pgrun.api",
    "measure_variance": "pgrun.variance.measure",
    "Agent": "pgrun.api",
    "RunResult": "pgrun.api",
    "Callback": "pgrun.training.callbacks",
    "ConfigError": "pgrun.config",
    "RunDirError": "pgrun.training.rundir",
    "RunFailed": "pgrun.errors",
    "Interrupted": "pgrun.training.interrupt",
    "PolicyFileError": "pgrun.training.policy_file",
}
"""the public names, and the module each lives in"""

__all__ = [
    "Agent",
    "Callback",
    "ConfigError",
    "Interrupted",
    "PolicyFileError",
    "RunDirError",
    "RunFailed",
    "RunResult",
    "__version__",
    "config_of",
    "load",
    "measure_variance",
    "resume",
    "train",
]

if TYPE_CHECKING:
    from pgrun.api import Agent, RunResult, config_of, load, resume, train
    from pgrun.config import ConfigError
    from pgrun.errors import RunFailed
    from pgrun.training.callbacks import Callback
    from pgrun.training.interrupt import Interrupted
    from pgrun.training.policy_file import PolicyFileError
    from pgrun.training.rundir import RunDirError
    from pgrun.variance.measure import measure_variance


def __getattr__(name: str) -> Any:
    """The API's names (and the errors it raises), imported at first use (so that
    `pgrun --help` never imports torch)."""
    if name not in API:
        raise AttributeError(f"module 'pgrun' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(API[name]), name)


def __dir__() -> list[str]:
    """The module's names with the API's (tab completion in a notebook offers pgrun.train)."""
    return sorted({*globals(), *API})
