"""The files tracking writes in a run dir, by name (no imports: the run dir's bookkeeping reads
these names before anything heavy is loaded)."""

METRICS_FILE = "metrics.jsonl"
"""one JSON row per logged iteration: {"step": env steps, "<namespace>/<name>": value, ...}"""
WANDB_DIR = "wandb"
"""Weights & Biases' own files (an offline run, logs)"""
WANDB_RUN_ID_FILE = "wandb_run_id"
"""the W&B run a resumed run continues"""
