"""One logger per run, fanning scalars out to TensorBoard, a JSONL file and the console."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pgrun.lazy import lazy_import
from pgrun.tracking.files import METRICS_FILE, WANDB_RUN_ID_FILE
from pgrun.tracking.wandb_sink import WandbSink

# TensorBoard's writer takes ~0.4 s to import: loaded with the first scalars, not before the
# first env step
torch_tensorboard = lazy_import("torch.utils.tensorboard")

TENSORBOARD_VIDEO_WIDTH = 320
"""videos in TensorBoard are shrunk by a whole factor to at most this width (pixels)"""
CONSOLE_KEYS = {
    "charts/episodic_return": ("return", "{:,.1f}"),
    "eval/return": ("eval", "{:,.1f}"),
    "train/entropy": ("entropy", "{:.3f}"),
    "train/approx_kl": ("kl", "{:.4f}"),
    "time/sps": ("steps/s", "{:,.0f}"),
}
"""the console line's scalars: name and format (plain numbers: 13,730 steps/s, not 1.373e+04)"""


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"algo": {"lr": 0.1}} -> {"algo.lr": 0.1}; lists and None become strings."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return flat


def truncate_metrics(path: Path, last_step: int) -> int | None:
    """Keep the rows of `path` up to env step `last_step` (and no torn last line); atomic.
    Returns the last env step the file had logged (None for no file or no row)."""
    if not path.is_file():
        return None
    kept, logged_through = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a kill
        logged_through = row["step"]
        if row["step"] <= last_step:
            kept.append(line + "\n")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    os.replace(tmp, path)
    return logged_through


class Logger:
    """Writes namespaced scalars ("charts/", "eval/", "train/", "time/") against env steps.

    TensorBoard event files and metrics.jsonl go to `run_dir`; the console gets a progress
    bar and one line per iteration. A resumed run (`resume_step`: the env step of its
    checkpoint) continues both from there: metrics.jsonl loses its rows after that step, and
    a new event file tells TensorBoard to purge the old files' events after it, so the steps
    logged between the checkpoint and the interruption are superseded, not duplicated. W&B
    cannot purge: a resumed run sends it only the steps past those it had logged (a resume
    repeats those steps exactly, so W&B already has their numbers).
    """

    def __init__(
        self,
        run_dir: Path,
        hyperparameters: dict[str, Any],
        total_steps: int,
        console: bool,
        tensorboard: bool,
        resume_step: int | None = None,
        wandb: dict[str, Any] | None = None,
    ) -> None:
        """`hyperparameters`: the run's config (nested); `wandb`: WandbSink's settings
        (project, entity, group) to send everything to Weights & Biases as well, or None."""
        continues_wandb = (run_dir / WANDB_RUN_ID_FILE).is_file()
        self.wandb = None if wandb is None else WandbSink(run_dir, hyperparameters, **wandb)
        logged_through = (
            None if resume_step is None else truncate_metrics(run_dir / METRICS_FILE, resume_step)
        )
        self.wandb_has_through = logged_through if continues_wandb else None
        """the last env step the W&B run already has (a resumed run's), None if none"""
        self.metrics = (run_dir / METRICS_FILE).open("a", encoding="utf-8")
        self.run_dir, self.tensorboard = run_dir, tensorboard
        self.purge_step = None if resume_step is None else resume_step + 1
        self.hyperparameters = flatten(hyperparameters) if resume_step is None else None
        self.writer: Any = None
        self.console = console
        self.progress = tqdm(
            total=total_steps,
            unit="step",
            file=sys.stderr,
            disable=not console or not sys.stderr.isatty(),
            dynamic_ncols=True,
            leave=False,
            initial=resume_step or 0,
        )

    def log(self, step: int, scalars: dict[str, float]) -> None:
        """Record `scalars` at env step `step`; NaN values (no data this time) are skipped."""
        scalars = {key: value for key, value in scalars.items() if not math.isnan(value)}
        if self.tensorboard:
            writer = self.event_writer()
            for key, value in scalars.items():
                writer.add_scalar(key, value, global_step=step)
        self.metrics.write(json.dumps({"step": step, **scalars}) + "\n")
        self.metrics.flush()
        if self.for_wandb(step):
            self.wandb.log(step, scalars)

    def for_wandb(self, step: int) -> bool:
        """Whether env step `step` goes to W&B: it is on, and does not have this step yet."""
        return self.wandb is not None and (self.wandb_has_through is None or step > self.wandb_has_through)

    def video_width(self, step: int) -> int | None:
        """How wide the frames of a clip at env step `step` need to be: full size (None) when
        it goes to W&B, else TensorBoard's TENSORBOARD_VIDEO_WIDTH."""
        return None if self.for_wandb(step) else TENSORBOARD_VIDEO_WIDTH

    def video(self, tag: str, frames: np.ndarray, step: int, fps: int) -> None:
        """Record a clip, frames [T, H, W, 3] uint8, at env step `step`: in TensorBoard
        (add_video, an animated GIF, which moviepy encodes) at most TENSORBOARD_VIDEO_WIDTH
        pixels wide, since a GIF of full-size frames takes tens of seconds to encode; and in
        Weights & Biases (an MP4, full size) when it is on."""
        if self.for_wandb(step):
            self.wandb.video(tag, frames, step, fps)
        if not self.tensorboard:
            return
        stride = -(-frames.shape[2] // TENSORBOARD_VIDEO_WIDTH)
        clip = np.ascontiguousarray(frames[:, ::stride, ::stride].transpose(0, 3, 1, 2)[None])
        self.event_writer().add_video(tag, clip, global_step=step, fps=fps)

    def event_writer(self) -> Any:
        """The run's TensorBoard writer, opened with the first scalars."""
        if self.writer is None:
            self.writer = torch_tensorboard.SummaryWriter(str(self.run_dir), purge_step=self.purge_step)
            if self.hyperparameters is not None:
                # Written into this run's own event file so that TensorBoard's HParams view
                # pairs the hyperparameters with this run's eval/return scalars.
                hparams = torch_tensorboard.summary.hparams(self.hyperparameters, {"eval/return": math.nan})
                for summary in hparams:
                    self.writer.file_writer.add_summary(summary)
        return self.writer

    def iteration(self, iteration: int, step: int, scalars: dict[str, float]) -> None:
        """Advance the progress bar to `step` and print the iteration's summary line."""
        self.progress.update(step - self.progress.n)
        if not self.console:
            return
        parts = [f"iter {iteration:4d}", f"steps {step:>9,d}"]
        parts += [
            f"{name} {form.format(scalars[key])}"
            for key, (name, form) in CONSOLE_KEYS.items()
            if not math.isnan(scalars.get(key, math.nan))  # (NaN: none this iteration, e.g. no episode ended)
        ]
        self.progress.write(" | ".join(parts), file=sys.stderr)

    def close(self, failed: bool = False) -> None:
        """Flush and close every destination; `failed`: the run failed or was stopped."""
        self.progress.close()
        self.metrics.close()
        if self.writer is not None:
            self.writer.close()
        if self.wandb is not None:
            self.wandb.close(failed)
