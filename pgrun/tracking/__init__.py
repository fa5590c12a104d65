"""Tracking: where a run's numbers and pictures go.

Owns: the logger that fans scalars out to TensorBoard, metrics.jsonl and the console
(`logger`), Weights & Biases (`wandb_sink`), and video of evaluation episodes (`video`). May
import pgrun.config, pgrun.errors, pgrun.collection and pgrun.networks (video runs an
episode); never the estimators, the algorithms, the training loop or the CLI.
"""
