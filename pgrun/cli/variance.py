"""The `pgrun-variance` command: what each policy-gradient estimator buys, measured at a fixed
policy of a run (pgrun.variance).

    pgrun-variance outputs/2026-12-02/10-00-00                    # the run's newest checkpoint
    pgrun-variance RUN_DIR --at 0 50000 200000 --batch-steps 1000 5000 --batches 100
    pgrun-variance RUN_DIR/checkpoints/step_000000050000.pt --estimators reward_to_go gae:0.9 is:2
    pgrun-variance --config algo=ppo env=cartpole                  # a fresh initialization
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NoReturn

from pgrun.cli import one_line
from pgrun.cli.one_line import OneLineParser
from pgrun.config import ConfigError
from pgrun.errors import CheckpointError

PROG = "pgrun-variance"


def fail(message: str, status: int = 2) -> NoReturn:
    one_line.fail(PROG, message, status)


def parser() -> argparse.ArgumentParser:
    from pgrun.variance.estimators import NAMES
    from pgrun.variance.lab import DEFAULT_ESTIMATORS

    p = OneLineParser(
        prog=PROG,
        description="Measure the variance, bias and agreement of policy-gradient estimators at a fixed "
        "policy: K independent batches, every estimator's gradient on the same ones, against a reference "
        "gradient (exact on a finite MDP). Writes results.csv, results.md, figures and measurement.json.",
    )
    p.add_argument("source", nargs="?", type=Path, help="a run dir (its checkpoints) or a checkpoint file")
    p.add_argument(
        "--config",
        nargs="+",
        metavar="OVERRIDE",
        help="instead of a source: the initialization of the run these pgrun overrides configure",
    )
    p.add_argument(
        "--at", nargs="+", type=int, metavar="STEPS", help="the run's checkpoints nearest these env steps"
    )
    p.add_argument("--all-checkpoints", action="store_true", help="every checkpoint of the run")
    p.add_argument(
        "--estimators",
        nargs="+",
        default=list(DEFAULT_ESTIMATORS),
        metavar="NAME",
        help=f"{NAMES} (default: {' '.join(DEFAULT_ESTIMATORS)})",
    )
    p.add_argument(
        "--batch-steps",
        nargs="+",
        type=int,
        default=[1000, 5000],
        metavar="B",
        help="batch sizes in env steps, each made of whole episodes (default: 1000 5000)",
    )
    p.add_argument(
        "--batches", type=int, default=100, metavar="K", help="independent batches per size (default 100)"
    )
    p.add_argument(
        "--reference-batches",
        type=int,
        metavar="M",
        help="batches of the largest size behind a sampled reference gradient (default: K)",
    )
    p.add_argument("--gamma", type=float, help="discount of the returns (default: the run's algo.gamma)")
    p.add_argument("--envs", type=int, default=16, metavar="N", help="env copies that collect (default 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out", type=Path, metavar="DIR", help="where the results go (default: RUN_DIR/variance/<time>)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main() -> None:
    """Console entry point: bad input ends in one line on stderr and exit 2."""
    args = parser().parse_args()
    if (args.source is None) == (args.config is None):
        fail("give a run dir or checkpoint file, or --config OVERRIDES (one of them)")
    if args.config is not None and (args.at or args.all_checkpoints):
        fail("--at and --all-checkpoints choose checkpoints of a run dir; --config has none")
    from pgrun.variance.measure import measure_variance
    from pgrun.variance.report import RESULTS_MD

    try:
        result = measure_variance(
            args.source,
            overrides=args.config or (),
            at=args.at,
            every_checkpoint=args.all_checkpoints,
            out_dir=args.out,
            estimators=args.estimators,
            batch_steps=args.batch_steps,
            batches=args.batches,
            reference_batches=args.reference_batches,
            gamma=args.gamma,
            num_envs=args.envs,
            seed=args.seed,
            progress=not args.no_progress,
        )
    except (ConfigError, CheckpointError) as error:
        fail(str(error))
    except KeyboardInterrupt:
        fail("interrupted", status=130)
    print((result.out_dir / RESULTS_MD).read_text(encoding="utf-8"))
    print(f"{PROG}: {len(result.rows)} rows in {result.seconds:.0f} s -> {result.out_dir}")


if __name__ == "__main__":
    main()
