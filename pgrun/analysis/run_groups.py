"""Finished runs read from their run dirs, and grouped by what differs in their resolved configs.

A run dir holds `.hydra/config.yaml` (the config the run resolved), `.hydra/hydra.yaml`
(whose `hydra.runtime.choices` names the algo and env presets picked), `metrics.jsonl` and,
once it finished, `summary.json`. Two runs belong to one group when their resolved configs
are equal apart from the seed, however they were spelled on the command line
(`total_steps=2e4` and `total_steps=20000`, or a key set to its default and left out).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from pgrun.config.legacy import current_config

PER_RUN_KEYS = frozenset({"seed"})
"""config keys that differ between the seeds of one experiment by design"""
OUTSIDE_THE_EXPERIMENT = ("log.", "checkpoint.", "eval.video")
"""prefixes of keys that change what a run writes, not what it learns or how it is
evaluated (the keys a resume may change, and the clips), so they do not split groups"""
NAMED_CHOICES = ("algo", "env")
"""config groups whose preset name labels a group when their keys differ"""
ABSENT = "-"
"""the value of a key a run's config does not have (e.g. algo.clip for vpg)"""

Value = Any
"""a config value made comparable: whole numbers as int, other numbers as float, lists as tuples"""


@dataclass(eq=False)
class Run:
    """One finished run: its resolved config (flattened to dotted keys), its preset choices and
    its logged scalars, one dict per row of metrics.jsonl."""

    path: Path
    config: dict[str, Value]
    choices: dict[str, str]
    rows: list[dict[str, float]] = field(repr=False)

    def value(self, key: str) -> Value:
        """A preset choice (`algo`, `env`) or a dotted config key; ABSENT if neither."""
        if key in self.choices:
            return self.choices[key]
        return self.config.get(key, ABSENT)

    def series(self, metric: str, x_axis: str) -> tuple[np.ndarray, np.ndarray]:
        """(x, metric) over the rows that logged the metric; x is `step` (env steps) or
        `time/elapsed` (wall-clock seconds), rows without it left out."""
        x_key = "step" if x_axis == "steps" else "time/elapsed"
        rows = [row for row in self.rows if metric in row and x_key in row]
        return (
            np.array([row[x_key] for row in rows], dtype=float),
            np.array([row[metric] for row in rows], dtype=float),
        )


def comparable(value: Value) -> Value:
    """A config value in one spelling: 2e4, 20000.0 and 20000 compare (and print) as 20000."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return int(value) if float(value).is_integer() else float(value)
    if isinstance(value, (list, tuple)):
        return tuple(comparable(item) for item in value)
    return value


def parse_value(text: str) -> Value:
    """A value written on the command line (`--where key=...`), comparable to config values."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    try:
        return comparable(float(text))
    except ValueError:
        return text


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Value]:
    """{"algo": {"optim": {"lr": 0.01}}} -> {"algo.optim.lr": 0.01}; an empty mapping is a value."""
    flat: dict[str, Value] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = comparable(value if not isinstance(value, dict) else ())
    return flat


Completion = Callable[[dict[str, Any], dict[str, str]], dict[str, Any]]
"""(a run's saved config, its preset choices) -> the config with every key today's pgrun has"""


def read_run(run_dir: Path, complete: Completion | None = None) -> Run:
    """The run in `run_dir`, which holds .hydra/config.yaml and metrics.jsonl. Its config is
    read with today's key names (pgrun.config.legacy) and, with `complete`, given the keys
    its pgrun version did not have yet, so that runs of two versions compare key by key."""
    config = OmegaConf.to_container(OmegaConf.load(run_dir / ".hydra" / "config.yaml"), resolve=True)
    config = current_config(config)
    hydra_file = run_dir / ".hydra" / "hydra.yaml"
    choices = {}
    if hydra_file.is_file():
        picked = OmegaConf.load(hydra_file).hydra.runtime.choices
        choices = {str(k): str(v) for k, v in picked.items() if not str(k).startswith("hydra/")}
    if complete is not None:
        config = complete(config, choices)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return Run(
        path=run_dir,
        config={key: value for key, value in flatten(config).items() if key.split(".")[0] != "hydra"},
        choices=choices,
        rows=[json.loads(line) for line in lines if line.strip()],
    )


def find_runs(
    folders: Iterable[Path], complete: Completion | None = None, unfinished_too: bool = False
) -> list[Run]:
    """Every finished run (with a summary.json) below `folders`. Runs that did not finish
    (interrupted, failed, still running) are named on stderr and left out, so that they
    are not counted as seeds; with `unfinished_too` they are read as well (their rows so far)."""
    runs, unfinished, seen = [], [], set()
    for folder in folders:
        for metrics_file in sorted(folder.rglob("metrics.jsonl")):
            run_dir = metrics_file.parent
            if run_dir.resolve() in seen:  # folders given inside one another: count a run once
                continue
            seen.add(run_dir.resolve())
            if not (run_dir / ".hydra" / "config.yaml").is_file():
                continue
            if not (run_dir / "summary.json").is_file() and not unfinished_too:
                unfinished.append(run_dir)
                continue
            runs.append(read_run(run_dir, complete))
    for run_dir in unfinished:
        print(
            f"pgrun-plot: skipping {run_dir}: it did not finish (no summary.json; --unfinished reads it)",
            file=sys.stderr,
        )
    return runs


def select_runs(runs: list[Run], conditions: list[str]) -> list[Run]:
    """The runs matching every condition "key=v1,v2": the run's preset choice or config value
    of `key` is one of the listed values (`env=hopper`, `algo.optim.lr=1e-3,3e-4`)."""
    for condition in conditions:
        key, _, values = condition.partition("=")
        allowed = {parse_value(value) for value in values.split(",")}
        runs = [run for run in runs if run.value(key) in allowed or str(run.value(key)) in allowed]
    return runs


def differing_keys(runs: list[Run]) -> list[str]:
    """The config keys, but per-run ones such as the seed, whose values are not all equal."""
    keys = sorted({key for run in runs for key in run.config} - PER_RUN_KEYS)
    keys = [key for key in keys if not key.startswith(OUTSIDE_THE_EXPERIMENT)]
    return [key for key in keys if len({run.value(key) for run in runs}) > 1]


def named_choices(runs: list[Run], differing: list[str]) -> list[str]:
    """The preset choices (algo, env) that differ between runs and whose own keys differ."""
    return [
        choice
        for choice in NAMED_CHOICES
        if len({run.choices.get(choice) for run in runs}) > 1
        and any(key.startswith(f"{choice}.") for key in differing)
    ]


def determined_by(runs: list[Run], choices: list[str], key: str) -> bool:
    """Whether runs with the same preset choices always have the same value of `key`."""
    values_by_choice: dict[tuple, set] = {}
    for run in runs:
        values_by_choice.setdefault(tuple(run.choices.get(c) for c in choices), set()).add(run.value(key))
    return all(len(values) == 1 for values in values_by_choice.values())


def label_keys(runs: list[Run], differing: list[str]) -> list[str]:
    """The keys that name the groups of `runs`: a preset choice (algo, env) for the differing
    keys that the choices determine (the preset's own and those a tuned preset for the pair
    sets), and every other differing key by itself."""
    named = named_choices(runs, differing)
    return named + [key for key in differing if not (named and determined_by(runs, named, key))]


def differing_settings(groups: dict[str, list[Run]]) -> dict[str, list[str]]:
    """Every config key (algo.* and env.* included, the seed and the output settings not)
    whose values differ between `groups`: key -> each group's value, its values joined by
    ", " where its runs differ, "-" for runs that do not have the key (e.g. algo.clip of vpg)."""
    runs = [run for members in groups.values() for run in members]
    settings = {}
    for key in differing_keys(runs):
        cells = [
            ", ".join(sorted({"-" if run.value(key) == ABSENT else str(run.value(key)) for run in members}))
            for members in groups.values()
        ]
        if len(set(cells)) > 1:
            settings[key] = cells
    return settings


def shared_choices(runs: list[Run]) -> list[str]:
    """The preset choices (algo, env) that every run shares: a label for runs all in one group."""
    return [
        choice
        for choice in NAMED_CHOICES
        if len({run.value(choice) for run in runs}) == 1 and runs[0].value(choice) != ABSENT
    ]


def group_runs(runs: list[Run], keys: list[str] | None = None) -> dict[str, list[Run]]:
    """Runs grouped by equal configs (all but the seed) or, with `keys`, by equal values of
    those keys; each group named by a short label such as "algo=ppo, algo.optim.lr=0.001"."""
    if keys is None:
        grouping = differing_keys(runs)
        labels = label_keys(runs, grouping) or shared_choices(runs)
    else:
        grouping = labels = keys
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(run.value(key) for key in grouping), []).append(run)
    named = {label(members[0], labels): members for members in groups.values()}
    return dict(sorted(named.items()))


def label(run: Run, keys: list[str]) -> str:
    """ "algo=ppo, algo.optim.lr=0.001": the run's values of `keys`."""
    return ", ".join(f"{key}={run.value(key)}" for key in keys) or "all runs"
