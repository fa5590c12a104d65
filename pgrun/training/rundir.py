"""The run directory: one run per directory, one process at a time, and its provenance.

A run dir holds one run's files: `.hydra/` (its composed config and overrides), `run.json`
(provenance), `metrics.jsonl`, TensorBoard event files, `checkpoints/`, `policy.pt` and
`summary.json`. A new run refuses a directory that already holds a run; a process that
writes a run dir holds an exclusive lock on `.lock`, which the operating system releases
when the process ends, however it ends (flock; not reliable across hosts on NFS).
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from omegaconf import DictConfig, OmegaConf

LOCK_FILE = ".lock"
CHECKPOINT_DIR = "checkpoints"
VIDEO_DIR = "videos"
"""eval.video's clips and pgrun-eval --video's, by default"""
PROVENANCE_FILE = "run.json"
RUN_MARKERS = (PROVENANCE_FILE, ".hydra/config.yaml", "metrics.jsonl", "checkpoints", "policy.pt")
"""files whose presence means a directory already holds a run"""


class RunDirError(RuntimeError):
    """A run dir that cannot be used as asked; the message is one line."""


def holds_run(run_dir: Path) -> bool:
    return any((run_dir / marker).exists() for marker in RUN_MARKERS)


class RunDirLock:
    """An exclusive flock on run_dir/.lock for as long as this process writes the run dir."""

    def __init__(self, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.file: TextIO = (run_dir / LOCK_FILE).open("a+", encoding="utf-8")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "unknown pid"
            self.file.close()
            raise RunDirError(
                f"{run_dir} is in use by another pgrun process ({holder}); wait for it to end "
                "or choose another directory"
            ) from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        self.file.flush()

    def release(self) -> None:
        if not self.file.closed:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()


def claim_new_run_dir(run_dir: Path, unique: bool = False) -> tuple[RunDirLock, Path]:
    """Lock `run_dir` for a new run; RunDirError if another process has it or it holds a run.
    `unique` (a dir pgrun named, not one the user chose): then run_dir-2, run_dir-3, ... in
    turn, until one is free (two runs started in the same second with the same algorithm,
    env and seed, say with different learning rates). Returns the lock and the dir."""
    candidates = [run_dir] + [run_dir.with_name(f"{run_dir.name}-{k}") for k in range(2, 100)]
    for candidate in candidates if unique else candidates[:1]:
        try:
            lock = RunDirLock(candidate)
        except RunDirError:
            if unique:
                continue
            raise
        if not holds_run(candidate):
            return lock, candidate
        lock.release()
        if not unique:
            raise RunDirError(
                f"{run_dir} already holds a run: continue it with `pgrun resume={run_dir}`, "
                "or start the new run in another directory (hydra.run.dir=...)"
            )
    raise RunDirError(f"{run_dir} and its 98 numbered neighbours are all taken; choose hydra.run.dir=...")


def write_hydra_files(run_dir: Path, task_config: DictConfig, hydra_config: DictConfig) -> None:
    """What Hydra itself writes to <run dir>/.hydra (pgrun turns Hydra's writing off so that
    it cannot overwrite another run's files before pgrun has checked the directory)."""
    directory = run_dir / ".hydra"
    directory.mkdir(exist_ok=True)
    OmegaConf.save(task_config, directory / "config.yaml")
    OmegaConf.save(hydra_config, directory / "hydra.yaml")
    OmegaConf.save(hydra_config.hydra.overrides.task, directory / "overrides.yaml")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).astimezone().isoformat(timespec="seconds")


def source_commit() -> dict[str, Any] | None:
    """The git commit of pgrun's source and whether it had uncommitted changes, when pgrun
    runs from a git checkout (an editable install); None for an installed wheel."""
    root = Path(__file__).resolve().parents[2]  # pgrun/training/rundir.py -> the checkout
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())} if commit else None


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def provenance() -> dict[str, Any]:
    """What produced a run: pgrun's version and commit, the libraries, the command, the host."""
    return {
        "pgrun": version("pgrun"),
        "git": source_commit(),
        "python": platform.python_version(),
        "torch": version("torch"),
        "gymnasium": version("gymnasium"),
        "numpy": version("numpy"),
        "hydra-core": version("hydra-core"),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "cwd": os.getcwd(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
    }


TRACKED = ("pgrun", "git", "python", "torch", "gymnasium", "numpy")
"""what must not change between a run's sessions for its resume to be exact"""


def describe(key: str, value: Any) -> str:
    if key == "git" and value:
        return f"{value['commit'][:10]}{' (dirty)' if value['dirty'] else ''}"
    return str(value)


class RunRecord:
    """run.json: provenance of every session that wrote the run (the first, then each resume),
    and the run's status: running, finished, interrupted or failed (with its error)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / PROVENANCE_FILE
        self.data: dict[str, Any] = (
            json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else {"sessions": []}
        )

    def start(self, config: dict[str, Any], choices: dict[str, Any] | None = None) -> None:
        """Record a session's start; the first records the run's resolved config and Hydra's
        group choices (algo=..., env=...), which `pgrun rerun=` starts from."""
        if choices is not None:
            self.data["config"], self.data["choices"] = config, choices
        self.data["sessions"].append({**provenance(), "started": now(), "ended": None})
        self.data["status"], self.data["error"] = "running", None
        self.write()

    def end(self, status: str, error: str | None = None, env_steps: int | None = None) -> None:
        self.data["sessions"][-1]["ended"] = now()
        self.data["status"], self.data["error"] = status, error
        if env_steps is not None:
            self.data["env_steps"] = env_steps
        self.write()

    def code_changes(self) -> list[str]:
        """What differs between the last session's code and libraries and this process's
        ("torch 2.13.0 -> 2.14.0"); a resume with any of them may not continue exactly."""
        if not self.data["sessions"]:
            return []
        last, now_ = self.data["sessions"][-1], provenance()
        return [
            f"{key} {describe(key, last.get(key))} -> {describe(key, now_[key])}"
            for key in TRACKED
            if last.get(key) != now_[key]
        ]

    def write(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)
