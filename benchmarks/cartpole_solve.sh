#!/usr/bin/env bash
# Env steps and wall-clock seconds for vpg and rtg to first reach eval return >= 475 on
# CartPole-v1 (mean of 10 evaluation episodes), seeds 0-4, shipped defaults, budget 500k steps.
# Usage: bash benchmarks/cartpole_solve.sh   (after `make setup`)
set -euo pipefail
cd "$(dirname "$0")/.."
sweep_dir="outputs/multirun/cartpole_solve_$(date +%Y%m%d-%H%M%S)"
.venv/bin/pgrun -m algo=vpg,rtg env=cartpole seed=0,1,2,3,4 stop_return=475 total_steps=500000 \
    log.console=false "hydra.sweep.dir=$sweep_dir"
.venv/bin/python benchmarks/solve_table.py "$sweep_dir"
