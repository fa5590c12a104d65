"""`measure_variance`: the lab as one call, from a run dir, a checkpoint or a config.

import pgrun
result = pgrun.measure_variance("outputs/2026-12-02/10-00-00", batch_steps=[1000, 5000])
result.rows          # one dict per (checkpoint, estimator, batch size); results.csv holds them
result.out_dir       # results.csv, results.md, measurement.json, figures
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from pgrun.api import config_of
from pgrun.config import ConfigError, one_line
from pgrun.training.rundir import provenance
from pgrun.variance.lab import Measurement, Settings
from pgrun.variance.report import write_figures, write_tables
from pgrun.variance.subjects import checkpoint_steps, checkpoint_subject, chosen_checkpoints, fresh_subject

MEASUREMENT_FILE = "measurement.json"


@dataclass
class VarianceResult:
    rows: list[dict[str, Any]]
    out_dir: Path
    seconds: float


def default_out_dir(source: Path | None) -> Path:
    """variance/<time> in the run dir measured, else outputs/variance/<time>."""
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    if source is None:
        return Path("outputs") / "variance" / stamp
    run_dir = source if source.is_dir() else source.parent.parent
    return run_dir / "variance" / stamp


def unused(directory: Path) -> Path:
    """`directory`, or with -2, -3, ... after its name if it exists (two measurements in one second)."""
    candidate, count = directory, 1
    while candidate.exists():
        count += 1
        candidate = directory.with_name(f"{directory.name}-{count}")
    return candidate


def rerun_command(
    source: Path | None, overrides: Sequence[str], files: list[Path] | None, options: Settings
) -> str:
    """The pgrun-variance command that measures the same again (into a new folder)."""
    words = ["pgrun-variance"]
    if source is None or files is None:
        words += ["--config", *overrides]
    elif source.is_dir():
        words += [str(source), "--at", *(str(checkpoint_steps(path)) for path in files)]
    else:
        words.append(str(source))
    words += ["--estimators", *options.estimators, "--batch-steps", *map(str, options.batch_steps)]
    words += ["--batches", str(options.batches), "--envs", str(options.num_envs), "--seed", str(options.seed)]
    if options.reference_batches is not None:
        words += ["--reference-batches", str(options.reference_batches)]
    if options.gamma is not None:
        words += ["--gamma", str(options.gamma)]
    return shlex.join(words)


def measure_variance(
    source: str | Path | None = None,
    overrides: Sequence[str] = (),
    at: Sequence[int] | None = None,
    every_checkpoint: bool = False,
    out_dir: str | Path | None = None,
    **settings: Any,
) -> VarianceResult:
    """Measure the estimators of `settings` (pgrun.variance.lab.Settings' fields) at the
    policies of `source` (a run dir: its checkpoint nearest each of `at` env steps, every one,
    or the newest; a checkpoint file) or, without a source, at the initialization of the run
    `overrides` configure. Writes the results to `out_dir` (default: variance/<time> in the
    run dir) and returns them. ConfigError (one line) for bad input, before anything is written."""
    options = Settings(**settings)
    specs = options.checked()
    if source is None:
        try:
            config = config_of(list(overrides))
        except (HydraException, OmegaConfBaseException, ConfigError) as error:
            raise ConfigError(f"--config {' '.join(overrides)}: {one_line(error)}") from error
        loaders = [lambda: fresh_subject(config)]
        described: dict[str, Any] = {"overrides": list(overrides)}
    else:
        source = Path(source)
        files = chosen_checkpoints(source, list(at) if at else None, every_checkpoint)
        loaders = [lambda path=path: checkpoint_subject(path) for path in files]
        described = {"source": str(source), "checkpoints": [str(path) for path in files]}
    files_or_none = None if source is None else files
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for load in loaders:
        subject = load()
        try:
            rows += Measurement(subject, options, specs).run()
        finally:
            subject.close()
    seconds = time.perf_counter() - started
    directory = (
        Path(out_dir) if out_dir is not None else default_out_dir(None if source is None else Path(source))
    )
    directory = unused(directory) if out_dir is None else directory
    directory.mkdir(parents=True, exist_ok=True)
    write_tables(rows, directory)
    figures = write_figures(rows, directory)
    record = described | {"command": rerun_command(source, overrides, files_or_none, options)}
    record |= {"settings": dataclasses.asdict(options), "seconds": seconds}
    record |= {"figures": [path.name for path in figures], "provenance": provenance()}
    (directory / MEASUREMENT_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return VarianceResult(rows, directory, seconds)
