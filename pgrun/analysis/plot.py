"""`pgrun-plot`: learning curves and a results table of runs, grouped by their resolved configs.

    pgrun-plot outputs/multirun/2026-11-22/10-00-00            # every run below the folder
    pgrun-plot SWEEP_A SWEEP_B --group algo --where algo=ppo,trpo --x time --stat iqm --out docs/

Runs are grouped by the keys of their resolved configs (.hydra/config.yaml) that differ
between them, the seed aside, and labelled by the algo/env preset names where those keys
come from the preset. Each group's curve is the mean (or IQM) over its seeds at each point,
over the runs that reached that point: a curve runs to the end of the group's longest run
and thins where fewer runs remain, with a tick where a run ends. The band is a 95%
percentile-bootstrap confidence interval of that statistic over seeds (rliable's
definition) or the mean +- the sample std. The table gives per group the number of seeds,
each seed's final value summarized as mean +- sample std, mean and IQM with bootstrap 95%
CIs, the best value (mean over seeds) and the env steps of the final values.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pgrun.analysis.run_groups import Run
from pgrun.analysis.stats import STATISTICS, TABLE_RESAMPLES, bootstrap_ci, sample_std

CURVE_POINTS = 200
"""grid points of a curve, to which every run's first and last logged point are added"""
CURVE_RESAMPLES = 2_000
"""bootstrap resamples at each point of a curve (the table's intervals use TABLE_RESAMPLES)"""
PNG_DPI = 200
FIGURE_INCHES = (7.0, 4.5)
FIGURE_NAMES = ("curves.png", "curves.svg", "curves.pdf")


@dataclass
class Curve:
    """A group's curve: the statistic over the runs that reached each x, and its band."""

    label: str
    x: np.ndarray
    center: np.ndarray
    low: np.ndarray
    high: np.ndarray
    runs_at: np.ndarray
    """how many of the group's runs reached each x (logged the metric at or after it)"""
    ends: np.ndarray
    """where each run's last logged value is, on the x axis"""

    @property
    def seeds(self) -> int:
        return len(self.ends)


def runs_on_grid(series: list[tuple[np.ndarray, np.ndarray]], grid: np.ndarray) -> np.ndarray:
    """[runs, points]: each run linearly interpolated between its logged points; NaN outside
    the x range the run covers (before its first or after its last logged point)."""
    values = np.full((len(series), len(grid)), np.nan)
    for i, (x, y) in enumerate(series):
        inside = (grid >= x[0]) & (grid <= x[-1])
        values[i, inside] = np.interp(grid[inside], x, y)
    return values


def group_curve(
    label: str, runs: list[Run], metric: str, x_axis: str, statistic: str, band: str, seed: int = 0
) -> Curve:
    """The curve of one group: a grid from the earliest first to the latest last logged point
    of its runs; at each point the statistic (mean or IQM) of the runs that reached it and
    the band (95% bootstrap CI of that statistic, or mean +- sample std)."""
    series = [run.series(metric, x_axis) for run in runs]
    starts, ends = np.array([x[0] for x, _ in series]), np.array([x[-1] for x, _ in series])
    grid = np.union1d(np.linspace(starts.min(), ends.max(), CURVE_POINTS), np.concatenate([starts, ends]))
    values = runs_on_grid(series, grid)
    reduce = STATISTICS[statistic]
    center, low, high = (np.full(len(grid), np.nan) for _ in range(3))
    for point in range(len(grid)):
        present = values[~np.isnan(values[:, point]), point]
        if not len(present):  # between one run's end and another's start
            continue
        center[point] = reduce(present)
        if band == "ci":
            low[point], high[point] = bootstrap_ci(present, reduce, CURVE_RESAMPLES, seed)
        else:
            spread = sample_std(present)
            low[point], high[point] = center[point] - spread, center[point] + spread
    runs_at = (~np.isnan(values)).sum(axis=0)
    return Curve(label, grid, center, low, high, runs_at, ends)


def final_values(runs: list[Run], metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each run's last logged value of the metric, its best value, and the env step of the last."""
    series = [run.series(metric, "steps") for run in runs]
    return (
        np.array([y[-1] for _, y in series]),
        np.array([y.max() for _, y in series]),
        np.array([x[-1] for x, _ in series]),
    )


def table_row(label: str, runs: list[Run], metric: str) -> dict[str, object]:
    """One group's line of the table: statistics over its seeds of their final values."""
    final, best, steps = final_values(runs, metric)
    mean_low, mean_high = bootstrap_ci(final, STATISTICS["mean"])
    iqm_low, iqm_high = bootstrap_ci(final, STATISTICS["iqm"])
    return {
        "group": label,
        "seeds": len(runs),
        "final_mean": float(final.mean()),
        "final_std": sample_std(final),
        "final_mean_ci_low": mean_low,
        "final_mean_ci_high": mean_high,
        "final_iqm": float(STATISTICS["iqm"](final)),
        "final_iqm_ci_low": iqm_low,
        "final_iqm_ci_high": iqm_high,
        "best_mean": float(best.mean()),
        "steps_min": int(steps.min()),
        "steps_max": int(steps.max()),
    }


def interval(low: float, high: float) -> str:
    return "-" if np.isnan(low) else f"{low:.1f} to {high:.1f}"


def markdown_table(rows: list[dict], metric: str, settings: dict[str, list[str]] | None = None) -> str:
    """The table in Markdown, followed by the line that says what its numbers are and a table
    of every config key whose value differs between the groups (`settings`: key -> the
    value in each group, in the rows' order)."""
    lines = [
        f"| group | seeds | final {metric}, mean ± std | mean, 95% CI | IQM (95% CI) | best, mean "
        "| env steps at final |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        std = "" if np.isnan(row["final_std"]) else f" ± {row['final_std']:.1f}"
        iqm_ci = interval(row["final_iqm_ci_low"], row["final_iqm_ci_high"])
        steps = f"{row['steps_min']:,}"
        if row["steps_max"] != row["steps_min"]:
            steps += f" to {row['steps_max']:,}"
        cells = [
            row["group"],
            str(row["seeds"]),
            f"{row['final_mean']:.1f}{std}",
            interval(row["final_mean_ci_low"], row["final_mean_ci_high"]),
            f"{row['final_iqm']:.1f}" + ("" if iqm_ci == "-" else f" ({iqm_ci})"),
            f"{row['best_mean']:.1f}",
            steps,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Final: each seed's last logged {metric}; std is the sample std (n - 1) over seeds; "
        "CIs are 95% percentile-bootstrap intervals over seeds "
        f"({TABLE_RESAMPLES:,} resamples, none below 2 seeds); IQM is the mean of the middle "
        "50% of seeds (rliable, Agarwal et al. 2021). Best: each seed's highest value, averaged.",
    ]
    if settings:
        lines += [
            "",
            "Every setting that differs between the groups (- : the group's runs have no such key):",
            "",
            "| setting | " + " | ".join(row["group"] for row in rows) + " |",
            "|---|" + "---|" * len(rows),
        ]
        lines += [f"| {key} | " + " | ".join(values) + " |" for key, values in settings.items()]
    return "\n".join(lines) + "\n"


def write_table(rows: list[dict], out: Path, metric: str, settings: dict[str, list[str]]) -> None:
    """results.csv (empty cells for undefined values) and results.md in `out`."""
    with (out / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()})
    (out / "results.md").write_text(markdown_table(rows, metric, settings))


def near(mask: np.ndarray) -> np.ndarray:
    """`mask` widened by one point on each side, so that line pieces drawn under it join up."""
    wide = mask.copy()
    wide[1:] |= mask[:-1]
    wide[:-1] |= mask[1:]
    return wide


def draw_curve(axes: Any, curve: Curve) -> bool:
    """The curve: thick where every run is present, thin where some have ended (or not yet
    started), a tick at each run's end, and the band. True if any part is thin."""
    full = curve.runs_at == curve.seeds
    (line,) = axes.plot(
        curve.x, np.where(full, curve.center, np.nan), lw=1.8, label=f"{curve.label} (n={curve.seeds})"
    )
    color = line.get_color()
    if not full.all():
        axes.plot(curve.x, np.where(near(~full), curve.center, np.nan), lw=0.8, color=color)
    axes.plot(curve.ends, np.interp(curve.ends, curve.x, curve.center), "|", ms=7, color=color)
    axes.fill_between(curve.x, curve.low, curve.high, alpha=0.18, color=color, lw=0)
    return not full.all()


def thousands(x: float, _position: int) -> str:
    """An axis tick in thousands: 250000 -> "250k"."""
    return f"{x / 1000:g}k" if x else "0"


def band_name(statistic: str, band: str) -> str:
    return f"{statistic}, 95% bootstrap CI" if band == "ci" else "mean ± sample std"


def plot(curves: list[Curve], out: Path, metric: str, x_axis: str, band: str, title: str) -> list[Path]:
    """curves.png (PNG_DPI), curves.svg and curves.pdf in `out`."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    plt.rcParams["svg.hashsalt"] = "pgrun-plot"  # the same runs give the same SVG, byte for byte
    figure, axes = plt.subplots(figsize=FIGURE_INCHES)
    thinned = [draw_curve(axes, curve) for curve in curves]
    if any(thinned):
        axes.plot([], [], lw=0.8, color="0.4", label="thin: fewer runs; | a run ends")
    axes.set_xlabel("env steps" if x_axis == "steps" else "wall-clock seconds")
    if x_axis == "steps":
        axes.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(thousands))
    axes.set_ylabel(f"{metric} ({band})")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    paths = [out / name for name in FIGURE_NAMES]
    for path in paths:
        metadata = {"Date": None} if path.suffix == ".svg" else {}
        metadata |= {"CreationDate": None} if path.suffix == ".pdf" else {}
        figure.savefig(path, dpi=PNG_DPI, metadata=metadata)
    plt.close(figure)
    return paths
