"""pgrun-plot on real CartPole runs, its statistics against hand-computed numbers, and
benchmarks/solve_table.py on the same runs."""

import csv
import dataclasses
import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import scipy.stats
from omegaconf import OmegaConf
from tests_support import metrics, pgrun

from pgrun.analysis.plot import PNG_DPI, group_curve
from pgrun.analysis.run_groups import find_runs, flatten, group_runs
from pgrun.analysis.stats import bootstrap_ci, interquartile_mean, mean, sample_std
from pgrun.cli.plot import main, with_todays_keys

SHORT = ["total_steps=2000", "eval.every=250", "eval.episodes=2", "log.every=1", "log.console=false"]
PPO = ["algo=ppo", "algo.batch_size=250", "algo.minibatch_size=50", "algo.epochs=2"]
RTG = ["algo=rtg", "algo.batch_size=4"]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Five finished runs: ppo seeds 0 and 1 (the same config, spelled two ways: the default
    clip left out, then written out with total_steps as 2e3, and with other checkpoint and
    clip intervals, which change what a run writes, not the experiment), rtg seeds 0-2, where
    seed 2's metrics.jsonl is cut after 1000 env steps as if it had stopped there."""
    root = tmp_path_factory.mktemp("plot")
    jobs = {
        "ppo_seed0": [*PPO, *SHORT, "seed=0"],
        "ppo_seed1": [
            *PPO,
            *SHORT,
            "seed=1",
            "algo.clip=0.2",
            "total_steps=2e3",
            "checkpoint.every=1000",
            "eval.video_every=500",
        ],
        **{f"rtg_seed{seed}": [*RTG, *SHORT, f"seed={seed}"] for seed in range(3)},
    }
    for name, overrides in jobs.items():
        result = pgrun(*overrides, f"hydra.run.dir={root / 'sweep' / name}", cwd=root)
        assert result.returncode == 0, result.stderr
    shortened = root / "sweep" / "rtg_seed2" / "metrics.jsonl"
    rows = [row for row in metrics(shortened.parent) if row["step"] <= 1000]
    shortened.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root / "sweep"


def plot_table(sweep: Path, out: Path, *args: str) -> dict[str, dict]:
    """Run pgrun-plot in this process; its results.csv by group."""
    main([str(sweep), "--out", str(out), *args])
    with (out / "results.csv").open() as handle:
        return {row["group"]: row for row in csv.DictReader(handle)}


def last(run_dir: Path, metric: str, x_key: str = "step") -> tuple[float, float]:
    """(x, value) of the run's last row that logged `metric`."""
    row = [row for row in metrics(run_dir) if metric in row][-1]
    return row[x_key], row[metric]


@pytest.mark.slow  # runs pgrun
def test_two_spellings_of_one_config_are_one_group_with_sample_std(sweep, tmp_path):
    rows = plot_table(sweep, tmp_path)
    assert set(rows) == {"algo=ppo", "algo=rtg"}
    ppo = rows["algo=ppo"]
    assert int(ppo["seeds"]) == 2
    finals = [last(sweep / f"ppo_seed{seed}", "eval/return")[1] for seed in (0, 1)]
    assert finals[0] != finals[1]  # else std could not tell sample from population
    assert float(ppo["final_mean"]) == pytest.approx(sum(finals) / 2)
    assert float(ppo["final_std"]) == pytest.approx(abs(finals[0] - finals[1]) / 2**0.5)  # n - 1 = 1
    assert int(rows["algo=rtg"]["seeds"]) == 3


@pytest.mark.slow  # runs pgrun
def test_a_run_below_two_given_folders_counts_once(sweep, tmp_path):
    main([str(sweep), str(sweep / "ppo_seed0"), "--out", str(tmp_path)])
    with (tmp_path / "results.csv").open() as handle:
        seeds = {row["group"]: int(row["seeds"]) for row in csv.DictReader(handle)}
    assert seeds == {"algo=ppo": 2, "algo=rtg": 3}


@pytest.mark.slow  # runs pgrun
def test_a_shorter_run_does_not_cut_its_group(sweep, tmp_path):
    rows = plot_table(sweep, tmp_path)
    ends = {seed: last(sweep / f"rtg_seed{seed}", "eval/return") for seed in range(3)}
    assert ends[2][0] <= 1000 < min(ends[0][0], ends[1][0])
    rtg = rows["algo=rtg"]
    assert int(rtg["steps_min"]) == ends[2][0]
    assert int(rtg["steps_max"]) == max(ends[0][0], ends[1][0])
    assert float(rtg["final_mean"]) == pytest.approx(np.mean([value for _, value in ends.values()]))
    runs = group_runs(find_runs([sweep]))["algo=rtg"]
    curve = group_curve("algo=rtg", runs, "eval/return", "steps", "mean", "ci")
    longest = [value for step, value in ends.values() if step == curve.x[-1]]
    assert curve.x[-1] == max(step for step, _ in ends.values())
    assert curve.center[-1] == pytest.approx(np.mean(longest))
    assert curve.runs_at[-1] == len(longest) and curve.runs_at.max() == 3
    before_the_cut = np.searchsorted(curve.x, ends[2][0])
    assert curve.runs_at[before_the_cut] == 3 and curve.runs_at[before_the_cut + 1] == 2


@pytest.mark.slow  # runs pgrun
def test_figures_are_written_as_png_at_paper_resolution_svg_and_pdf(sweep, tmp_path):
    plot_table(sweep, tmp_path, "--title", "CartPole")
    pixels = matplotlib.image.imread(tmp_path / "curves.png")
    assert pixels.shape[:2] == (round(4.5 * PNG_DPI), round(7 * PNG_DPI))
    assert len(np.unique(pixels[..., :3].reshape(-1, 3), axis=0)) > 20  # lines and bands in colour
    svg = (tmp_path / "curves.svg").read_text()
    assert "algo=ppo (n=2)" in svg and "algo=rtg (n=3)" in svg  # every legend entry counts its seeds
    assert (tmp_path / "curves.pdf").read_bytes().startswith(b"%PDF")
    assert "(n - 1)" in (tmp_path / "results.md").read_text()


@pytest.mark.slow  # runs pgrun
def test_metric_and_wall_clock_axis(sweep, tmp_path):
    rows = plot_table(sweep, tmp_path, "--metric", "charts/episodic_return", "--x", "time")
    finals = [last(sweep / f"ppo_seed{seed}", "charts/episodic_return")[1] for seed in (0, 1)]
    assert float(rows["algo=ppo"]["final_mean"]) == pytest.approx(np.mean(finals))
    runs = group_runs(find_runs([sweep]))["algo=ppo"]
    curve = group_curve("algo=ppo", runs, "charts/episodic_return", "time", "iqm", "ci")
    seconds = [
        last(sweep / f"ppo_seed{seed}", "charts/episodic_return", "time/elapsed")[0] for seed in (0, 1)
    ]
    assert curve.x[-1] == max(seconds) < 1000  # seconds, not env steps


@pytest.mark.slow  # runs pgrun
def test_a_metric_no_run_logged_is_a_one_line_error(sweep, tmp_path):
    plot = subprocess.run(
        [str(Path(sys.executable).parent / "pgrun-plot"), str(sweep), "--metric", "eval/retrun",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert plot.returncode == 2  # bad input, as pgrun and pgrun-eval exit
    (line,) = plot.stderr.strip().splitlines()
    assert line.startswith("pgrun-plot: error: no run logged 'eval/retrun'; logged: ")
    assert "eval/return" in line and "charts/episodic_return" in line


@pytest.mark.slow  # runs pgrun
def test_where_and_group_take_preset_choices_and_config_keys(sweep, tmp_path):
    assert set(plot_table(sweep, tmp_path / "a", "--where", "env=cartpole", "--band", "ci")) == {
        "algo=ppo",
        "algo=rtg",
    }
    only_ppo = plot_table(sweep, tmp_path / "b", "--where", "algo.clip=0.2", "total_steps=2000")
    assert {group: int(row["seeds"]) for group, row in only_ppo.items()} == {"algo=ppo, env=cartpole": 2}
    by_seed = plot_table(sweep, tmp_path / "c", "--where", "algo=rtg", "--group", "algo", "seed")
    assert sorted(by_seed) == ["algo=rtg, seed=0", "algo=rtg, seed=1", "algo=rtg, seed=2"]
    by_env_id = plot_table(sweep, tmp_path / "d", "--group", "env.id", "--stat", "iqm")
    assert {group: int(row["seeds"]) for group, row in by_env_id.items()} == {"env.id=CartPole-v1": 5}


@pytest.mark.slow  # runs pgrun
def test_labels_name_the_algo_preset_and_the_keys_it_does_not_decide(sweep):
    runs = find_runs([sweep])
    swept = next(run for run in runs if run.path.name == "ppo_seed1")
    runs[runs.index(swept)] = dataclasses.replace(swept, config=swept.config | {"algo.optim.lr": 0.123})
    ppo_lr, rtg_lr = (
        next(r for r in runs if r.path.name == n).config["algo.optim.lr"] for n in ("ppo_seed0", "rtg_seed0")
    )
    assert {label: len(group) for label, group in group_runs(runs).items()} == {
        f"algo=ppo, algo.optim.lr={ppo_lr}": 1,
        "algo=ppo, algo.optim.lr=0.123": 1,
        f"algo=rtg, algo.optim.lr={rtg_lr}": 3,
    }


@pytest.mark.slow  # runs pgrun
def test_the_table_names_every_setting_that_differs_between_groups(sweep, tmp_path):
    plot_table(sweep, tmp_path)
    lines = (tmp_path / "results.md").read_text().splitlines()
    start = lines.index("| setting | algo=ppo | algo=rtg |")
    rows = {line.split(" | ")[0].removeprefix("| "): line.split(" | ")[1:] for line in lines[start + 2 :]}
    # expected: every key whose value differs between a ppo and an rtg run, read from the
    # configs the runs resolved (run.json: per-algorithm defaults such as the log-std filled in)
    flat_ppo, flat_rtg = (
        flatten(json.loads((sweep / name / "run.json").read_text())["config"])
        for name in ("ppo_seed0", "rtg_seed0")
    )
    differing = {
        key
        for key in flat_ppo.keys() | flat_rtg.keys()
        if flat_ppo.get(key, "-") != flat_rtg.get(key, "-") and key not in {"seed", "total_steps"}
        and not key.startswith(("log.", "checkpoint.", "eval.video_every"))
    }  # fmt: skip
    assert set(rows) == differing
    # the algorithm's own keys are named too, with "-" where a group has no such key
    assert rows["algo.clip"] == ["0.2", "- |"] and rows["env.num_envs"] == ["8", "4 |"]
    assert rows["algo.optim.lr"] == ["0.002", "0.01 |"]


@pytest.mark.slow  # runs pgrun
def test_runs_of_an_older_version_are_read_with_todays_keys(sweep, tmp_path):
    def older(name: str, *dropped: str) -> None:
        shutil.copytree(sweep / "ppo_seed0", tmp_path / name)
        config = OmegaConf.to_container(OmegaConf.load(tmp_path / name / ".hydra" / "config.yaml"))
        for key in dropped:
            *parents, leaf = key.split(".")
            functools.reduce(dict.get, parents, config).pop(leaf)
        OmegaConf.save(OmegaConf.create(config), tmp_path / name / ".hydra" / "config.yaml")

    # keys added since that version, at the value they stand for: the runs are one group
    older("before_schedule_steps", "schedule_steps", "algo.value.clip_range", "log.info_keys")
    shutil.copytree(sweep / "ppo_seed1", tmp_path / "today")
    groups = group_runs(find_runs([tmp_path], complete=with_todays_keys))
    assert [len(runs) for runs in groups.values()] == [2]
    assert len(group_runs(find_runs([tmp_path]))) == 2  # (read as written, they split)
    # a key whose default changed reads as what the older run did
    older("before_fresh_starts", "eval.starts")
    groups = group_runs(find_runs([tmp_path], complete=with_todays_keys))
    assert {label: len(runs) for label, runs in groups.items()} == {
        "eval.starts=fixed": 1,
        "eval.starts=fresh": 2,
    }


def test_interquartile_mean_hand_computed():
    assert interquartile_mean(np.arange(1.0, 9.0)) == pytest.approx(4.5)  # 3, 4, 5, 6
    assert interquartile_mean(np.array([0, 0, 1, 2, 10, 100])) == pytest.approx(13 / 4)  # drops 1 each end
    assert interquartile_mean(np.array([100, 0, 5, 1, 10])) == pytest.approx(16 / 3)
    assert interquartile_mean(np.array([3.0, 1.0, 20.0])) == pytest.approx(8.0)  # n < 4: the mean
    samples = np.random.default_rng(0).normal(size=(50, 11))
    reference = scipy.stats.trim_mean(samples, 0.25, axis=1)  # rliable's IQM
    np.testing.assert_allclose(interquartile_mean(samples), reference)


def test_sample_std_hand_computed():
    assert sample_std(np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx((5 / 3) ** 0.5)
    assert np.isnan(sample_std(np.array([7.0])))


def test_bootstrap_ci_hand_computed():
    # resampling [1, 2, 10]: all three draws equal to 1 (or 10) has probability 1/27 > 2.5%
    assert bootstrap_ci(np.array([1.0, 2.0, 10.0])) == (1.0, 10.0)
    # resampling [0, 0, 0, 1]: k ones ~ Binomial(4, 1/4); P(k >= 3) = 5.1% > 2.5% > P(k = 4) = 0.4%
    assert bootstrap_ci(np.array([0.0, 0.0, 0.0, 1.0]), mean) == (0.0, 0.75)
    # its IQM is the mean of the middle two: 1 for k >= 3 (5.1%), 0 for k <= 1 (73.8%)
    assert bootstrap_ci(np.array([0.0, 0.0, 0.0, 1.0]), interquartile_mean) == (0.0, 1.0)
    assert all(np.isnan(bootstrap_ci(np.array([5.0]))))


def test_bootstrap_ci_is_deterministic_and_covers_the_mean_about_95_percent():
    values = np.random.default_rng(1).normal(size=10)
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
    assert bootstrap_ci(values, seed=3) != bootstrap_ci(values, seed=4)
    rng = np.random.default_rng(2)
    covered = [
        low <= 0.0 <= high
        for low, high in (bootstrap_ci(rng.normal(size=30), resamples=2000, seed=k) for k in range(400))
    ]
    assert 0.91 <= np.mean(covered) <= 0.98  # the percentile bootstrap runs a little under 95%


def solve_table(*sweeps: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "solve_table.py"), *map(str, sweeps)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.slow  # runs pgrun
def test_solve_table_without_a_target_reports_final_returns(sweep):
    table = solve_table(sweep)
    assert table.returncode == 0, table.stderr
    lines = {line.split(" | ")[1]: line for line in table.stdout.splitlines() if "CartPole-v1" in line}
    assert set(lines) == {"ppo", "rtg"}
    finals = sorted(last(sweep / f"ppo_seed{seed}", "eval/return")[1] for seed in (0, 1))
    assert lines["ppo"].startswith("| CartPole-v1 (no target set) | ppo | no target set | - | - | ")
    assert f"| {np.median(finals):.1f} ({finals[0]:.1f} to {finals[1]:.1f}) |" in lines["ppo"]


@pytest.mark.slow  # runs pgrun
def test_solve_table_with_a_target_counts_the_seeds_that_reached_it(tmp_path):
    result = pgrun(
        *RTG, *SHORT, "target_return=5", f"hydra.run.dir={tmp_path / 'sweep' / 'rtg'}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    table = solve_table(tmp_path / "sweep")
    assert table.returncode == 0, table.stderr
    assert "| CartPole-v1 (target 5) | rtg | 1/1 | " in table.stdout
