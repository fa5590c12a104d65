"""Hydra callbacks for sweeps."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, ClassVar

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write

from pgrun.config import one_line

FAILURES_FILE = "failures.jsonl"


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


class ReportFailures(Callback):
    """Record every failed job of a sweep (<sweep dir>/failures.jsonl, appended by the job's
    own process, which may be a launcher's worker), so that all are reported at the end:
    Hydra's sweepers re-raise only the first."""

    sweep_dir: ClassVar[Path | None] = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        ReportFailures.sweep_dir = Path(config.hydra.sweep.dir).absolute()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status != JobStatus.FAILED or config.hydra.mode.name != "MULTIRUN":
            return
        line = {"job": str(config.hydra.runtime.output_dir), "error": one_line(job_return._return_value)}
        with (Path(config.hydra.sweep.dir) / FAILURES_FILE).open("a", encoding="utf-8") as failures:
            failures.write(json.dumps(line) + "\n")


def report_sweep_failures() -> bool:
    """Print one line per failed job of the sweep this process ran; False if it ran none
    or no job failed."""
    if ReportFailures.sweep_dir is None or not (ReportFailures.sweep_dir / FAILURES_FILE).is_file():
        return False
    lines = (ReportFailures.sweep_dir / FAILURES_FILE).read_text(encoding="utf-8").splitlines()
    failures = [json.loads(line) for line in lines if line.strip()]
    print(
        f"pgrun: error: {len(failures)} job(s) of the sweep in {ReportFailures.sweep_dir} failed:",
        file=sys.stderr,
    )
    for failure in failures:
        job = Path(failure["job"])
        name = (
            job.relative_to(ReportFailures.sweep_dir) if job.is_relative_to(ReportFailures.sweep_dir) else job
        )
        print(f"pgrun: error: job {name}: {failure['error']}", file=sys.stderr)
    return True
