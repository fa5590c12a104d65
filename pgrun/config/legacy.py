"""Configs saved by older pgrun versions, read with today's key names.

A checkpoint, run.json and .hydra/config.yaml keep the config as the run resolved it; when
a key is renamed, resume, rerun and pgrun-plot read old runs through `current_algo_keys`.
"""

from __future__ import annotations

from typing import Any


def current_algo_keys(algo: dict[str, Any]) -> dict[str, Any]:
    """A saved `algo` config with today's key names (a new dict; the input is unchanged).

    vpg, rtg, baseline and is called their memory chunks `minibatch_size` until that name was
    left to PPO's SGD minibatches (the only algorithm with `epochs`): it is `chunk_size` now.
    """
    if "minibatch_size" in algo and "epochs" not in algo and "chunk_size" not in algo:
        return {("chunk_size" if key == "minibatch_size" else key): value for key, value in algo.items()}
    return dict(algo)
