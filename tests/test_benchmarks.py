"""The benchmark scripts run (their --smoke modes): a benchmark that cannot run has rotted."""

import json
import os
import re
import signal
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from tests_support import metrics, pgrun, start_pgrun, wait_for_rows

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
def test_speed_benchmark_smoke_run_writes_every_table(tmp_path):
    report = tmp_path / "speed.md"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--smoke", "--out", str(report)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = report.read_text()
    headers = [line for line in text.splitlines() if line.startswith("## ")]
    titles = ["env throughput", "collector", "PPO training", "PPO on Atari", "solve", "update"]
    titles += ["torch.compile", "Start-up"]
    assert len(headers) == len(titles) and all(t in h for t, h in zip(titles, headers, strict=True)), headers
    # SB3 and pgrun side by side, a ratio per task (CartPole, HalfCheetah, Pong); every
    # algorithm's update timed
    assert len(re.findall(r"\| \d[\d,]* \| \d[\d,]* \| \d+\.\d\dx \|", text)) == 3
    # the Atari floor: the envs, the forward passes and the minibatch steps timed alone
    assert re.search(r"\| [\d.]+ s \| [\d.]+ s \| [\d.]+ s \| [\d,]+ \| \d+\.\d\dx \|", text)
    assert re.search(r"\| a2c \| [\d,]+ \| [\d.,]+ \|", text) and re.search(
        r"\| vpg \| [\d,]+ \| [\d.,]+ \|", text
    )
    # torch.compile against eager: a speed-up, or the reason it could not compile here
    assert re.search(r"\| CartPole-v1 \(256\) \| [\d,]+ us \| ([\d,]+ us \| \d+\.\d\dx|failed: )", text)
    assert re.search(r"\| `pgrun --help` \| \d+\.\d\d \|", text) and "found by composing" in text
    # the collector against its floor, and the policy and env in turns against it
    assert re.search(r"^\| CartPole-v1 \| 8 \| .* \| \d\.\d\d \| \d\.\d\d \|$", text, re.MULTILINE)
    assert not list(tmp_path.glob("MUJOCO_LOG.TXT"))


@pytest.mark.slow
def test_defaults_against_references_smoke_run_writes_its_table(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "defaults_vs_references.py"), "--smoke",
         "--only", "vpg", "ppo", "--out", str(tmp_path / "report")],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [
        line
        for line in (tmp_path / "report" / "results.md").read_text().splitlines()
        if line.startswith("| ")
    ]
    settings = [row.split(" | ")[1] for row in rows[1:]]
    assert settings == [
        "pgrun's defaults", "one episode per update (source REINFORCE)",
        "pgrun's defaults", "Stable-Baselines3 PPO",
    ]  # fmt: skip
    assert all(re.search(r"\| 1 \| -?\d+\.\d ± nan \| -?\d+\.\d \| [01]/1 \|$", row) for row in rows[1:]), (
        rows
    )


@pytest.mark.slow
def test_kept_runs_are_small_and_the_mujoco_report_reads_them(tmp_path):
    """benchmarks/keep_runs.py keeps a finished run's evaluations, summary and config (what
    the report and pgrun-plot read); the report made from the kept copies gives the runs'
    own final and best returns."""
    runs = tmp_path / "outputs"
    for seed in (0, 1):
        result = pgrun(
            "algo=trpo", "env=hopper", f"seed={seed}", "total_steps=2048", "algo.batch_size=512",
            "eval.every=1024", "eval.episodes=2", "log.console=false",
            f"hydra.run.dir={runs}/trpo_hopper_seed{seed}", cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    (runs / "trpo_hopper_seed2").mkdir()  # unfinished: no summary.json
    kept = tmp_path / "kept"
    script = [sys.executable, str(ROOT / "benchmarks" / "keep_runs.py")]
    result = subprocess.run(
        [*script, *map(str, sorted(runs.iterdir())), "--into", str(kept)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "skipping" in result.stderr and sorted(p.name for p in kept.iterdir()) == [
        "trpo_hopper_seed0",
        "trpo_hopper_seed1",
    ]
    original = metrics(runs / "trpo_hopper_seed0")
    rows = metrics(kept / "trpo_hopper_seed0")
    assert [row["step"] for row in rows] == [1024, 2048]  # the evaluations (the last is one)
    assert rows[-1]["eval/return"] == original[-1]["eval/return"] and "train/loss" not in rows[-1]
    assert rows[-1]["time/env"] == original[-1]["time/env"]

    report_script = str(ROOT / "benchmarks" / "mujoco_report.py")
    report = subprocess.run(
        [sys.executable, report_script, str(kept), "--out", str(tmp_path / "report")],
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0, report.stderr
    summaries = [json.loads((runs / f"trpo_hopper_seed{s}" / "summary.json").read_text()) for s in (0, 1)]
    finals = [summary["final_eval_return"] for summary in summaries]
    [row] = [
        line
        for line in (tmp_path / "report" / "results.md").read_text().splitlines()
        if "| Hopper-v5 | trpo |" in line
    ]
    assert f"| 2 | {statistics.mean(finals):,.0f} ± {statistics.stdev(finals):,.0f} |" in row
    assert (tmp_path / "report" / "hopper" / "seeds0-2" / "curves.png").is_file()
    assert "## seeds 0-2" in (tmp_path / "report" / "results.md").read_text()
    assert "## seeds 3-5" not in (tmp_path / "report" / "results.md").read_text()  # (none ran)


@pytest.mark.slow
def test_an_interrupted_run_is_kept_only_when_asked_with_its_training_curve_thinned(tmp_path):
    """keep_runs --unfinished keeps a run stopped by SIGINT (run.json, config, no summary) and
    --train-every keeps one training-return row per that many steps between its evaluations."""
    run_dir = tmp_path / "interrupted_run"
    process = start_pgrun(
        run_dir, "algo=ppo", "env=cartpole", "algo.batch_size=64", "algo.minibatch_size=32",
        "total_steps=100000", "eval.every=512", "eval.episodes=1", "log.console=false", "log.every=1",
    )  # fmt: skip
    wait_for_rows(process, run_dir, 40)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    assert process.returncode == 130
    script = [sys.executable, str(ROOT / "benchmarks" / "keep_runs.py"), str(run_dir)]
    kept = tmp_path / "kept"

    skipped = subprocess.run([*script, "--into", str(kept)], capture_output=True, text=True)
    assert skipped.returncode == 0 and "status: interrupted); --unfinished keeps it" in skipped.stderr
    assert not kept.exists()

    result = subprocess.run(
        [*script, "--into", str(kept), "--unfinished", "--train-every", "256"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    target = kept / "interrupted_run"
    assert json.loads((target / "run.json").read_text())["status"] == "interrupted"
    assert not (target / "summary.json").exists() and (target / ".hydra" / "config.yaml").is_file()
    original, rows = metrics(run_dir), metrics(target)
    last_step = original[-1]["step"]
    assert rows[-1]["step"] == last_step and "time/env" in rows[-1] and "train/loss" not in rows[0]
    evaluations = {row["step"] for row in original[:-1] if "eval/return" in row}
    first_in_each_256 = {}  # the first row with a training return in each [256k, 256(k+1))
    for row in original[:-1]:
        if "charts/episodic_return" in row:
            first_in_each_256.setdefault(row["step"] // 256, row["step"])
    assert len(evaluations) >= 2 and len(first_in_each_256) >= 5
    assert [row["step"] for row in rows[:-1]] == sorted(evaluations | set(first_in_each_256.values()))
    returns = {row["step"]: row.get("charts/episodic_return") for row in original}
    assert all(row.get("charts/episodic_return") == returns[row["step"]] for row in rows)

    refused = subprocess.run([*script, f"--into={kept}", "--train-every=0"], capture_output=True, text=True)
    assert refused.returncode == 2 and "--train-every=0 is not allowed" in refused.stderr


@pytest.mark.slow
def test_the_gpu_benchmark_runs_its_cases_and_says_when_there_is_no_gpu():
    import torch

    script = str(ROOT / "benchmarks" / "gpu.py")
    smoke = subprocess.run([sys.executable, script, "--smoke"], capture_output=True, text=True, check=True)
    assert len(re.findall(r"cpu [\d,]+ steps/s \(smoke\)", smoke.stdout)) == 2
    if not torch.cuda.is_available():
        plain = subprocess.run([sys.executable, script], capture_output=True, text=True, check=True)
        assert plain.stdout.startswith("benchmarks/gpu.py: no CUDA device here (torch ")
        assert plain.stdout.strip().endswith("nothing measured")


@pytest.mark.slow
def test_the_atari_vectorization_benchmark_measures_each_vectorization(tmp_path):
    pytest.importorskip("ale_py")
    report = tmp_path / "vectorization.md"
    script = str(ROOT / "benchmarks" / "atari_vectorization.py")
    result = subprocess.run(
        [sys.executable, script, "--steps", "20", "--train-steps", "1024", "--out", str(report)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "SCRATCH": str(tmp_path / "runs")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = report.read_text()
    for vectorization in ("sync", "async"):
        env_row = rf"\| gymnasium {vectorization} \(env.vectorization={vectorization}\) \| [\d,]+ \|"
        assert re.search(env_row, text)
        assert re.search(rf"\| env.vectorization={vectorization} \| [\d,]+ \|", text)
