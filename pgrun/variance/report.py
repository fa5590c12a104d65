"""The lab's outputs: results.csv (every number), results.md (the table to read), figures
(variance and cosine against batch size; along a run when several checkpoints were measured)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

RESULTS_CSV, RESULTS_MD = "results.csv", "results.md"
FIGURE_BATCH, FIGURE_RUN = "variance_vs_batch.png", "variance_along_run.png"
PNG_DPI = 150

COLUMNS = [
    ("estimator", "estimator", "{}"),
    ("batch_steps", "batch steps", "{:,}"),
    ("episodes", "episodes", "{:,}"),
    ("total_variance", "tr Var g", "{:.4g}"),
    ("variance_ratio", "/ total_return", "{:.3f}"),
    ("snr", "SNR", "{:.3g}"),
    ("cosine_reference", "cos(g, g*)", "{:.3f}"),
    ("cosine_between", "cos(g, g')", "{:.3f}"),
    ("bias", "bias [95% CI]", "{:.3g}"),
    ("relative_bias", "bias / abs(g*)", "{:.3f}"),
    ("ess_fraction", "ESS / episodes", "{:.3f}"),
    ("explained_variance", "critic EV", "{:.3f}"),
]


def cell(row: dict[str, Any], key: str, form: str) -> str:
    value = row[key]
    if isinstance(value, float) and math.isnan(value):
        return "-"
    text = form.format(value)
    if key == "bias":
        text += f" [{row['bias_low']:.3g}, {row['bias_high']:.3g}]"
    return text


def markdown(rows: list[dict[str, Any]]) -> str:
    """One table per subject; the columns named as in the README."""
    lines: list[str] = []
    for subject in dict.fromkeys(row["subject"] for row in rows):
        group = [row for row in rows if row["subject"] == subject]
        lines += [
            f"### {subject}",
            "",
            f"reference g*: {group[0]['reference']}; gamma {group[0]['gamma']}; "
            f"{group[0]['batches']} batches per size",
            "",
            "| " + " | ".join(title for _, title, _ in COLUMNS) + " |",
            "|" + "|".join("---" for _ in COLUMNS) + "|",
        ]
        lines += ["| " + " | ".join(cell(row, key, form) for key, _, form in COLUMNS) + " |" for row in group]
        lines.append("")
    return "\n".join(lines)


def write_tables(rows: list[dict[str, Any]], out_dir: Path) -> None:
    with open(out_dir / RESULTS_CSV, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out_dir / RESULTS_MD).write_text(markdown(rows), encoding="utf-8")


def write_figures(rows: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Variance and cosine to g* against batch steps (log-log, with a 1/B guide), for the last
    subject; with several subjects, the same at the largest batch size against env steps."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    estimators = list(dict.fromkeys(row["estimator"] for row in rows))
    last = [row for row in rows if row["subject"] == rows[-1]["subject"]]
    written = []
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name in estimators:
        points = sorted(
            (r["mean_steps"], r["total_variance"], r["cosine_reference"])
            for r in last
            if r["estimator"] == name
        )
        steps = [p[0] for p in points]
        left.plot(steps, [p[1] for p in points], marker="o", label=name)
        right.plot(steps, [p[2] for p in points], marker="o", label=name)
    first = min(last, key=lambda r: r["mean_steps"])
    top = max(r["total_variance"] for r in last if r["mean_steps"] == first["mean_steps"])
    guide = sorted({r["mean_steps"] for r in last})
    left.plot(guide, [top * guide[0] / s for s in guide], color="gray", linestyle=":", label="1/B")
    left.set(xscale="log", yscale="log", xlabel="env steps per batch", ylabel="tr Var g")
    right.set(
        xscale="log",
        xlabel="env steps per batch",
        ylabel="mean cos(g, g*)",
        ylim=(min(0, right.get_ylim()[0]), 1),
    )
    left.legend(fontsize=8)
    figure.suptitle(rows[-1]["subject"], fontsize=10)
    figure.tight_layout()
    figure.savefig(out_dir / FIGURE_BATCH, dpi=PNG_DPI)
    plt.close(figure)
    written.append(out_dir / FIGURE_BATCH)
    subjects = list(dict.fromkeys(row["subject"] for row in rows))
    if len(subjects) > 1:
        largest = max(row["batch_steps"] for row in rows)
        figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        for name in estimators:
            points = [r for r in rows if r["estimator"] == name and r["batch_steps"] == largest]
            left.plot(
                [r["env_steps"] for r in points],
                [r["total_variance"] for r in points],
                marker="o",
                label=name,
            )
            right.plot(
                [r["env_steps"] for r in points],
                [r["cosine_reference"] for r in points],
                marker="o",
                label=name,
            )
        left.set(yscale="log", xlabel="env steps of the run", ylabel=f"tr Var g ({largest:,}-step batches)")
        right.set(xlabel="env steps of the run", ylabel="mean cos(g, g*)")
        left.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(out_dir / FIGURE_RUN, dpi=PNG_DPI)
        plt.close(figure)
        written.append(out_dir / FIGURE_RUN)
    return written
