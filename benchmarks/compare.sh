#!/usr/bin/env bash
# The README's results table: vpg, rtg, baseline and is on CartPole-v1 (target eval return 475)
# and Acrobot-v1 (target -100), seeds 0-4, shipped defaults, a fixed budget of 300k env steps
# per run (no early stop, so the final return is at the same budget for every run).
# The two envs' sweeps run side by side, one core each.
# Usage: bash benchmarks/compare.sh   (after `make setup`), about 40 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=$(date +%Y%m%d-%H%M%S)
sweep() {  # env target
    .venv/bin/pgrun -m algo=vpg,rtg,baseline,is "env=$1" seed=0,1,2,3,4 "target_return=$2" \
        total_steps=300000 log.console=false "hydra.sweep.dir=outputs/multirun/compare_${stamp}/$1"
}
mkdir -p outputs
sweep cartpole 475 > "outputs/compare_${stamp}_cartpole.log" 2>&1 &
sweep acrobot -100 > "outputs/compare_${stamp}_acrobot.log" 2>&1
wait
.venv/bin/python benchmarks/solve_table.py "outputs/multirun/compare_${stamp}/cartpole" \
    "outputs/multirun/compare_${stamp}/acrobot"
