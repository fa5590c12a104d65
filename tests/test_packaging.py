"""The installed CLI finds its configs: from a built wheel and from the editable install."""

import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from pgrun.config import config_dir

REPO = Path(__file__).resolve().parent.parent


def show_job_config(pgrun: Path, cwd: Path) -> str:
    result = subprocess.run(
        [str(pgrun), "--cfg", "job", "algo=rtg", "env=pendulum"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_editable_install_uses_the_repository_configs(tmp_path):
    assert config_dir() == REPO / "configs"
    output = show_job_config(Path(sys.executable).parent / "pgrun", cwd=tmp_path)
    assert "estimator: reward_to_go" in output and "id: Pendulum-v1" in output


@pytest.mark.slow
def test_wheel_carries_the_configs_and_runs_from_any_directory(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(tmp_path / "dist"),
            str(REPO),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next((tmp_path / "dist").glob("pgrun-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    # The new venv borrows this environment's dependencies (torch and the rest) through a .pth
    # path entry, but gets pgrun itself only from the wheel.
    venv_site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    dependencies = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    (venv_site / "borrowed_dependencies.pth").write_text("\n".join(dependencies) + "\n")
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    located = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "from pgrun.cli.train import config_dir; print(config_dir())"],
        cwd=elsewhere,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert Path(located) == venv_site / "pgrun" / "configs"
    output = show_job_config(venv / "bin" / "pgrun", cwd=elsewhere)
    assert "estimator: reward_to_go" in output and "id: Pendulum-v1" in output
