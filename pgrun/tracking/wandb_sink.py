"""Weights & Biases as a second destination of the run's logs (`log.wandb=true`, extra
`pgrun[wandb]`): the same scalars against env steps, the resolved config, and videos.

`WANDB_MODE=offline` (or no network) keeps everything in `<run dir>/wandb/offline-run-*`,
which `wandb sync` uploads later. A resumed run continues the same W&B run (its id is kept
in the run dir); scalars are logged against `env_step`, not W&B's own step counter, so the
steps a resume logs again after its checkpoint do not collide with W&B's monotonic step.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np

from pgrun.config import ConfigError
from pgrun.errors import first_line
from pgrun.tracking.files import WANDB_RUN_ID_FILE

STEP_KEY = "env_step"


def import_wandb() -> Any:
    try:
        import wandb
    except ImportError as error:
        raise ConfigError(
            "log.wandb=true needs the wandb package: pip install 'pgrun[wandb]' (or log.wandb=false)"
        ) from error
    return wandb


class WandbSink:
    """One W&B run per pgrun run dir, named after it."""

    def __init__(
        self,
        run_dir: Path,
        config: dict[str, Any],
        project: str,
        entity: str | None,
        group: str | None,
    ) -> None:
        wandb = import_wandb()
        self.wandb = wandb
        id_file = run_dir / WANDB_RUN_ID_FILE
        run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(4)
        os.environ.setdefault("WANDB_SILENT", "true")  # pgrun's own console lines say where the run is
        try:
            self.run = self.start(wandb, run_dir, run_id, config, project, entity, group)
        except Exception as error:  # no login, no network, a bad entity: before the run starts
            raise ConfigError(
                f"log.wandb=true: W&B could not start a run ({type(error).__name__}: {first_line(error)}); "
                "log in (wandb login, or WANDB_API_KEY), or keep it offline with WANDB_MODE=offline"
            ) from error
        id_file.write_text(run_id + "\n")
        self.run.define_metric(STEP_KEY)
        self.run.define_metric("*", step_metric=STEP_KEY)

    @staticmethod
    def start(
        wandb: Any,
        run_dir: Path,
        run_id: str,
        config: dict[str, Any],
        project: str,
        entity: str | None,
        group: str | None,
    ) -> Any:
        return wandb.init(
            project=project,
            entity=entity,
            group=group,
            name=run_dir.name,
            id=run_id,
            resume="allow",
            dir=str(run_dir),
            config=config,
        )

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self.run.log({STEP_KEY: step, **scalars})

    def video(self, tag: str, frames: np.ndarray, step: int, fps: int) -> None:
        """`frames`: [T, H, W, C] uint8."""
        clip = self.wandb.Video(np.transpose(frames, (0, 3, 1, 2)), fps=fps, format="mp4")
        self.run.log({STEP_KEY: step, tag: clip})

    def close(self, failed: bool = False) -> None:
        """End the W&B run; `failed`: the run failed or was stopped (W&B shows it so)."""
        self.run.finish(exit_code=1 if failed else 0)
