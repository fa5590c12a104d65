"""`pgrun-plot`: learning curves and a results table across runs, grouped by their overrides.

    pgrun-plot outputs/multirun/2026-11-22/10-00-00            # every run below the folder
    pgrun-plot SWEEP_A SWEEP_B --group algo --where algo=ppo,trpo --x time --band ci --out docs/

A run is a folder with metrics.jsonl and .hydra/overrides.yaml. Runs are grouped by their
command-line overrides, by default all but seed (and the sweep's own settings such as
hydra.*). For each group the curves of its runs (one per seed) are interpolated on a
common grid and drawn as their mean with a band (std over seeds, or a 95% bootstrap CI of
the mean); the table gives seed counts and final and best returns per group.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

IGNORED_KEYS = {"seed"}


@dataclass
class Run:
    path: Path
    overrides: dict[str, str]
    steps: np.ndarray
    seconds: np.ndarray
    values: np.ndarray


def find_runs(folders: list[Path], metric: str) -> list[Run]:
    """Every finished run (with a summary.json) below `folders` that logged `metric` at least
    once; runs that did not finish (interrupted, failed, still running) are named on stderr
    and left out, so that they are not counted as seeds."""
    runs, unfinished = [], []
    for folder in folders:
        for metrics_file in sorted(folder.rglob("metrics.jsonl")):
            run_dir = metrics_file.parent
            overrides_file = run_dir / ".hydra" / "overrides.yaml"
            if not overrides_file.is_file():
                continue
            if not (run_dir / "summary.json").is_file():
                unfinished.append(run_dir)
                continue
            pairs = [str(item).lstrip("+~").split("=", 1) for item in OmegaConf.load(overrides_file)]
            rows = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
            rows = [row for row in rows if metric in row]
            if not rows:
                continue
            runs.append(
                Run(
                    path=run_dir,
                    overrides={key: value for key, value in (pair for pair in pairs if len(pair) == 2)},
                    steps=np.array([row["step"] for row in rows], dtype=float),
                    seconds=np.array([row.get("time/elapsed", np.nan) for row in rows], dtype=float),
                    values=np.array([row[metric] for row in rows], dtype=float),
                )
            )
    for run_dir in unfinished:
        print(f"pgrun-plot: skipping {run_dir}: it did not finish (no summary.json)", file=sys.stderr)
    return runs


def select_runs(runs: list[Run], conditions: list[str]) -> list[Run]:
    """The runs whose overrides match every condition "key=v1,v2" (one of the listed values)."""
    for condition in conditions:
        key, _, values = condition.partition("=")
        allowed = set(values.split(","))
        runs = [run for run in runs if run.overrides.get(key) in allowed]
    return runs


def group_runs(runs: list[Run], keys: list[str] | None) -> dict[str, list[Run]]:
    """Runs grouped by the values of `keys`, or of every override but seed that varies."""
    if keys is None:
        every = sorted({key for run in runs for key in run.overrides} - IGNORED_KEYS)
        keys = [key for key in every if len({run.overrides.get(key) for run in runs}) > 1] or every[:1]
    groups: dict[str, list[Run]] = {}
    for run in runs:
        name = ",".join(f"{key}={run.overrides.get(key, '-')}" for key in keys) or "all runs"
        groups.setdefault(name, []).append(run)
    return dict(sorted(groups.items()))


def bootstrap_ci(samples: np.ndarray, statistic, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of statistic(samples) over axis 0."""
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(samples), size=(resamples, len(samples)))
    values = np.array([statistic(samples[i]) for i in index])
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def interquartile_mean(values: np.ndarray) -> float:
    """Mean of the middle 50% of the values (the IQM of Agarwal et al. 2021, as in rliable)."""
    ordered = np.sort(values)
    cut = int(np.floor(0.25 * len(ordered)))
    return float(ordered[cut : len(ordered) - cut].mean())


def curves(group: list[Run], x_axis: str, points: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """The group's curves interpolated on a common x grid up to the shortest run: (x, [runs, points])."""
    xs = [run.steps if x_axis == "steps" else run.seconds for run in group]
    end = min(x.max() for x in xs)
    grid = np.linspace(min(x.min() for x in xs), end, points)
    return grid, np.stack([np.interp(grid, x, run.values) for x, run in zip(xs, group, strict=True)])


def table_rows(groups: dict[str, list[Run]]) -> list[dict[str, object]]:
    rows = []
    for name, group in groups.items():
        final = np.array([run.values[-1] for run in group])
        best = np.array([run.values.max() for run in group])
        row: dict[str, object] = {
            "group": name,
            "seeds": len(group),
            "final_mean": float(final.mean()),
            "final_std": float(final.std()),
            "best_mean": float(best.mean()),
            "final_iqm": interquartile_mean(final),
            "steps": int(min(run.steps[-1] for run in group)),
        }
        if len(group) >= 3:
            row["final_iqm_ci_low"], row["final_iqm_ci_high"] = bootstrap_ci(final, interquartile_mean)
        rows.append(row)
    return rows


def write_table(rows: list[dict[str, object]], out: Path, metric: str) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with (out / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"| group | seeds | final {metric}, mean ± std | IQM (95% CI) | best, mean | env steps |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        ci = (
            f" ({row['final_iqm_ci_low']:.1f} to {row['final_iqm_ci_high']:.1f})"
            if "final_iqm_ci_low" in row
            else ""
        )
        lines.append(
            f"| {row['group']} | {row['seeds']} | {row['final_mean']:.1f} ± {row['final_std']:.1f} "
            f"| {row['final_iqm']:.1f}{ci} | {row['best_mean']:.1f} | {row['steps']:,} |"
        )
    (out / "results.md").write_text("\n".join(lines) + "\n")


def plot(groups: dict[str, list[Run]], out: Path, metric: str, x_axis: str, band: str, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=100)
    for name, group in groups.items():
        grid, ys = curves(group, x_axis)
        mean = ys.mean(axis=0)
        if band == "ci" and len(group) >= 2:
            low, high = np.array(
                [bootstrap_ci(ys[:, i], np.mean, resamples=500) for i in range(ys.shape[1])]
            ).T
        else:
            low, high = mean - ys.std(axis=0), mean + ys.std(axis=0)
        axes.plot(grid, mean, label=f"{name} (n={len(group)})")
        axes.fill_between(grid, low, high, alpha=0.2)
    axes.set_xlabel("env steps" if x_axis == "steps" else "wall-clock seconds")
    axes.set_ylabel(metric)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path = out / "curves.png"
    figure.savefig(path)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pgrun-plot", description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="sweep folders or run dirs")
    parser.add_argument("--metric", default="eval/return", help="scalar to plot (default: eval/return)")
    parser.add_argument(
        "--group", nargs="*", help="override keys to group by (default: all that vary but seed)"
    )
    parser.add_argument(
        "--x", choices=("steps", "time"), default="steps", help="x axis: env steps or wall time"
    )
    parser.add_argument(
        "--band", choices=("std", "ci"), default="std", help="std over seeds or 95%% bootstrap CI"
    )
    parser.add_argument(
        "--where", nargs="*", default=[], help="keep only runs with these overrides: key=v1,v2"
    )
    parser.add_argument("--out", type=Path, help="output folder (default: <first folder>/plots)")
    parser.add_argument("--title", default="", help="plot title")
    args = parser.parse_args(argv)
    missing = [str(folder) for folder in args.folders if not folder.is_dir()]
    if missing:
        sys.exit(f"pgrun-plot: error: not a folder: {', '.join(missing)}")
    runs = select_runs(find_runs(args.folders, args.metric), args.where)
    if not runs:
        sys.exit(
            f"pgrun-plot: error: no run under {', '.join(map(str, args.folders))} logged {args.metric!r}"
        )
    groups = group_runs(runs, args.group)
    out = args.out or args.folders[0] / "plots"
    out.mkdir(parents=True, exist_ok=True)
    rows = table_rows(groups)
    write_table(rows, out, args.metric)
    path = plot(groups, out, args.metric, args.x, args.band, args.title)
    print((out / "results.md").read_text(), end="")
    print(f"wrote {path}, {out / 'results.md'}, {out / 'results.csv'}")


if __name__ == "__main__":
    main()
