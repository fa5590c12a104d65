"""The benchmark scripts run (their --smoke modes): a benchmark that cannot run has rotted."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

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
    titles = ["env throughput", "collector", "PPO training", "solve", "update", "Start-up"]
    assert len(headers) == len(titles) and all(t in h for t, h in zip(titles, headers, strict=True)), headers
    # SB3 and pgrun side by side, a ratio per task; every algorithm's update timed
    assert len(re.findall(r"\| \d[\d,]* \| \d[\d,]* \| \d+\.\d\dx \|", text)) == 2
    assert re.search(r"\| a2c \| [\d,]+ \| [\d.,]+ \|", text) and re.search(
        r"\| vpg \| [\d,]+ \| [\d.,]+ \|", text
    )
    assert re.search(r"\| `pgrun --help` \| \d+\.\d\d \|", text)
    assert not list(tmp_path.glob("MUJOCO_LOG.TXT"))
