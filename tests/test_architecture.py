"""The package's shape as checked facts: the import contracts catch a forbidden import, every
subpackage says what it owns and may import, modules stay small, composing a config never
loads torch."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "pgrun"
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")
MAX_MODULE_LINES = 300


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """import-linter with the repository's contracts on the package copy under `root`."""
    return subprocess.run(
        [LINT_IMPORTS, "--config", str(REPO / ".importlinter"), "--no-cache"],
        cwd=root,
        env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_contracts_hold_on_the_package():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("estimation/functional.py", "import pgrun.collection.envs", "Layers"),  # sibling layers
        ("networks/policy.py", "from pgrun.training import loop", "Layers"),  # networks under the loop
        ("analysis/stats.py", "import torch", "Analysis reads run directories"),
        ("config/schema.py", "import torch", "The config"),
        ("algorithms/rule.py", "from pgrun.cli import train", "Layers"),
        ("training/rng.py", "from pgrun.training import loop", "No import cycles"),  # loop -> build -> rng
        ("algorithms/ppo.py", "from pgrun.collection import envs", "The algorithms learn"),
        ("tracking/logger.py", "import pgrun.estimation.functional", "Tracking records"),
        ("training/loop.py", "import pgrun.analysis.stats", "Only the commands read analysis"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, line, contract):
    copy = tmp_path / "pgrun"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "configs"))
    path = copy / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout[-3000:]


def subpackages() -> list[Path]:
    return sorted(path.parent for path in PACKAGE.glob("*/__init__.py"))


def test_every_subpackage_says_what_it_owns_and_what_it_may_import():
    assert {path.name for path in subpackages()} >= {
        "analysis", "algorithms", "cli", "collection", "config", "estimation", "networks", "tracking",
        "training",
    }  # fmt: skip
    for package in subpackages():
        docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
        assert "Owns" in docstring, package.name
        assert "import" in docstring, package.name  # what it may (and may not) import


def test_every_module_is_small_and_says_what_it_holds():
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        assert len(text.splitlines()) <= MAX_MODULE_LINES, (
            f"{path.relative_to(REPO)} is over {MAX_MODULE_LINES} lines"
        )
        assert ast.get_docstring(ast.parse(text)), f"{path.relative_to(REPO)} has no module docstring"


def test_composing_configs_through_the_api_never_imports_torch():
    """`import pgrun` and composing a config of every algorithm (pgrun.config_of, as the
    command composes one) leave torch unloaded: --help and config errors answer at once."""
    code = (
        "import sys, pgrun; algos = ('vpg', 'baseline', 'ppo', 'trpo', 'a2c', 'is'); "
        "configs = [pgrun.config_of([f'algo={a}']) for a in algos]; "
        "print(sorted(type(c.algo).__name__ for c in configs), 'torch._C' in sys.modules)"
    )  # (pgrun.lazy puts an unloaded `torch` in sys.modules: torch._C is what loading it loads)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "False"
    assert "PPOConfig" in result.stdout and "TrustRegionConfig" in result.stdout
