"""Estimation: from a batch to the per-step coefficients Phi_t of the policy-gradient estimate.

Owns: the pure math on time-major [T, N] tensors (`functional`: returns, reward-to-go, GAE,
importance weights, normalization) and the estimators that feed it from a batch, one table
of them by name (`estimators`). May import torch, pgrun.batch and pgrun.networks (the policy
and critic it evaluates); never the collection, the algorithms, the training loop or the CLI.
"""
