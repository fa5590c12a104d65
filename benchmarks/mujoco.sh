#!/usr/bin/env bash
# The MuJoCo reproduction runs: ALGOS x ENVS x SEEDS at BUDGET env steps (default 1M),
# PARALLEL at a time (default 2, one per core), each in its own fixed run dir under outputs/mujoco/. Resumable:
# a run that finished is skipped, one that was interrupted (a session ended, Ctrl-C, a
# reboot) continues from its last checkpoint with `pgrun resume=`, so calling this again
# picks up where it stopped. Each finished run is kept, small, in docs/mujoco/runs/
# (benchmarks/keep_runs.py): run dirs are lost with the machine, the kept records are not.
# Usage: [BUDGET=N] [PARALLEL=N] bash benchmarks/mujoco.sh ALGOS ENVS SEEDS     (after `make setup`)
#   bash benchmarks/mujoco.sh ppo,trpo halfcheetah,hopper,walker2d 0,1,2
set -euo pipefail
cd "$(dirname "$0")/.."
export BUDGET=${BUDGET:-1000000} ROOT=outputs/mujoco
mkdir -p "$ROOT"
for algo in ${1//,/ }; do for env in ${2//,/ }; do for seed in ${3//,/ }; do
    echo "$algo $env $seed"
done; done; done | xargs -P "${PARALLEL:-2}" -L 1 bash -c '
    algo=$1 env=$2 seed=$3
    dir="$ROOT/${algo}_${env}_seed${seed}"
    if [ -f "$dir/summary.json" ]; then echo "done: $dir"; exit 0; fi
    if compgen -G "$dir/checkpoints/step_*.pt" > /dev/null; then
        echo "resuming: $dir"
        .venv/bin/pgrun "resume=$dir" "total_steps=$BUDGET" log.console=false >> "$dir.log" 2>&1
    else
        echo "starting: $dir"
        rm -rf "$dir"  # stopped before its first checkpoint: nothing to resume
        .venv/bin/pgrun "algo=$algo" "env=$env" "seed=$seed" "total_steps=$BUDGET" log.console=false \
            "hydra.run.dir=$dir" > "$dir.log" 2>&1
    fi
    status=$?
    if [ -f "$dir/summary.json" ]; then .venv/bin/python benchmarks/keep_runs.py "$dir" --into docs/mujoco/runs; fi
    echo "finished: $dir (exit $status)"' _
