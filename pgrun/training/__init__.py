"""The run's lifecycle: building a run, its training loop and callbacks, and what it leaves.

Owns: the builder (`build`: envs, policy, estimator, update rule, collector from a config),
the loop (`loop`) and the callbacks it calls at named points (`callbacks`: evaluation, video,
checkpoints, divergence guard, logging), checkpoints and policy files, resume and rerun,
the run directory and its provenance, stop signals, and the random generators. May import
every part below it (config, collection, networks, estimation, algorithms, tracking); never
the CLI or the Python API.
"""
