"""Hydra callbacks for sweeps."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write


class MaximizeReturns(Callback):
    """Make the Optuna sweeper maximize, since a pgrun job returns an eval return.

    Optuna's own default is to minimize; a direction given on the command line
    (hydra.sweeper.direction=...) is left as it is.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweeper = config.hydra.sweeper
        if not str(sweeper.get("_target_", "")).endswith("OptunaSweeper"):
            return
        if any(str(item).startswith("hydra.sweeper.direction=") for item in config.hydra.overrides.hydra):
            return
        with read_write(sweeper), open_dict(sweeper):
            sweeper.direction = "maximize"
