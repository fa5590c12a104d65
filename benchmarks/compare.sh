#!/usr/bin/env bash
# A results table of the README: ALGOS on each ENV (eval-return TARGET), seeds 0-4, shipped
# defaults, a fixed budget of BUDGET env steps per run (default 300k; no early stop, so the
# final return is at the same budget for every run). One `pgrun -m` sweep per env, two at a time (one per
# core), then benchmarks/solve_table.py on them.
# Usage: [BUDGET=N] bash benchmarks/compare.sh ALGOS ENV:TARGET [ENV:TARGET ...]   (after `make setup`)
#   bash benchmarks/compare.sh vpg,rtg,baseline,is cartpole:475 acrobot:-100
#   bash benchmarks/compare.sh ppo,ppo_penalty,trpo,npg cartpole:475 acrobot:-100 pendulum:-250
set -euo pipefail
cd "$(dirname "$0")/.."
algos=$1
shift
budget=${BUDGET:-300000}
sweep_root="outputs/multirun/compare_$(date +%Y%m%d-%H%M%S)"
mkdir -p "$sweep_root"
for pair in "$@"; do echo "$pair"; done | xargs -P 2 -I{} bash -c '
    env=${1%%:*}; target=${1##*:}
    .venv/bin/pgrun -m "algo=$2" "env=$env" seed=0,1,2,3,4 "target_return=$target" "total_steps=$4" \
        log.console=false "hydra.sweep.dir=$3/$env" > "$3/$env.log" 2>&1' _ {} "$algos" "$sweep_root" "$budget"
dirs=()
for pair in "$@"; do dirs+=("$sweep_root/${pair%%:*}"); done
.venv/bin/python benchmarks/solve_table.py "${dirs[@]}"
