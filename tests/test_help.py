"""`pgrun --help` and `--version`: pgrun's own page, and nothing heavy imported to print it."""

import subprocess
import sys

import pytest
from tests_support import pgrun

import pgrun as package
from pgrun.config import config_dir


def test_help_lists_every_algorithm_and_env_with_the_common_keys(tmp_path):
    result = pgrun("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    page = result.stdout
    for group in ("algo", "env"):
        for path in (config_dir() / group).glob("*.yaml"):
            assert f"\n  {path.stem} " in page, path.stem
    assert "a2c          A2C: synchronous advantage actor-critic." in page
    assert "cartpole                  CartPole-v1" in page
    assert "total_steps=300000" in page and "seed=0" in page and "target_return=null" in page
    assert "--cfg job" in page and "resume=RUN_DIR" in page and "Examples:" in page
    assert "powered by Hydra" not in page and "== Config" not in page  # not Hydra's stock page
    assert "schema" not in page  # nor its internal groups
    assert not list(tmp_path.iterdir())  # no run dir, no log


def test_version_is_pgruns(tmp_path):
    result = pgrun("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"pgrun {package.__version__}"


IMPORTED = """
import sys
from pgrun.cli import train as cli
sys.argv = ["pgrun", *sys.argv[1:]]
try:
    cli.main()
except SystemExit as exit:
    print("exit", exit.code, file=sys.stderr)
heavy = ("torch._C", "gymnasium", "tensorboard", "numpy")
print("imported:", *(name for name in heavy if name in sys.modules))
print("hydra:", *(name for name in ("hydra", "hydra_plugins") if name in sys.modules))
"""


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--version"], ["algo=nope"], ["algo=ppo", "algo.clip=-1"], ["algo=ppo", "algo.nope=1"]],
    ids=["help", "version", "unknown algo", "out of range", "unknown key"],
)
def test_help_and_config_errors_answer_without_torch_or_gymnasium(tmp_path, args):
    """What makes them fast (issue #12: < 0.5 s): torch alone takes over a second to import."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORTED, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.splitlines()[-2] == "imported:", result.stdout[-300:]
    if args[0].startswith("algo"):
        assert "exit 2" in result.stderr and "pgrun: error:" in result.stderr


@pytest.mark.parametrize(
    ("args", "hydra_modules"),
    [(["--help"], ""), (["--version"], ""), (["algo=nope"], " hydra"), (["algo=ppo", "env=pong2"], " hydra")],
    ids=["help", "version", "unknown algo", "unknown env"],
)
def test_help_imports_no_hydra_and_a_mistyped_group_composes_nothing(tmp_path, args, hydra_modules):
    """Hydra's import and its composition take most of a config error's time: help needs
    neither, a mistyped algo= or env= is found in configs/ before composing (its message
    needs hydra.errors only; composing scans Hydra's plugins, hydra_plugins)."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORTED, *args], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.splitlines()[-1] == f"hydra:{hydra_modules}", result.stdout[-300:]
    if "=" in args[-1]:
        group, _, value = args[-1].partition("=")
        shipped = ", ".join(sorted(path.stem for path in (config_dir() / group).glob("*.yaml")))
        assert f"pgrun: error: {group}={value} is not allowed: must be one of {shipped}" in result.stderr
        assert "exit 2" in result.stderr


def test_the_algorithm_modules_load_torch_when_a_rule_is_built():
    code = (
        "import sys; from pgrun.algorithms import register_schemas; register_schemas(); "
        "assert 'torch._C' not in sys.modules; "
        "from pgrun.algorithms.ppo import PPO; import torch; print(PPO.__name__, torch.zeros(2).sum().item())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["PPO", "0.0"]


def test_only_a_plain_mistyped_group_name_is_refused_before_composing():
    """check_group_choices refuses what Hydra would refuse, and leaves to Hydra every spelling
    Hydra parses first (spaces, quotes, a sweep's list or function) and the nulls."""
    from pgrun.config import ConfigError
    from pgrun.config.overrides import check_group_choices

    check_group_choices(["algo=ppo ", 'env="cartpole"', "algo=ppo,a2c", "algo=choice(ppo,a2c)", "env=null"])
    check_group_choices(["algo=ppo", "env=minatar_breakout", "algo.nope=1", "+algo=nope"])
    with pytest.raises(ConfigError, match=r"^env=cartpol is not allowed: must be one of acrobot, "):
        check_group_choices(["algo=ppo", "env=cartpol"])
