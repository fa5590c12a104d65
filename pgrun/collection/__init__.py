"""Collection: running the policy in gymnasium envs and recording what happened.

Owns: making envs from the config (`envs`), the collector that steps a vector env with the
policy and records batches (`collector`), evaluation episodes (`evaluator`), saving and
restoring the envs' state for checkpoints (`env_state`), and normalization of observations
and rewards (`normalization`). May import pgrun.config, pgrun.batch, pgrun.errors and
pgrun.networks (the policy it runs); never the estimators, the algorithms, the training
loop, tracking or the CLI.
"""
