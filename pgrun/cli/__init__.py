"""The commands: `pgrun` (`train`), `pgrun-eval` (`evaluate`), `pgrun-plot` (`plot`), the
help page, and the sweeps' Hydra callbacks.

Owns: parsing command lines, Hydra's application and its sweep callbacks, one-line errors
and exit codes. Thin callers of the Python API (pgrun.api) and the training lifecycle; may
import anything in pgrun, and nothing in pgrun imports it (Hydra names the sweep callbacks
in configs/config.yaml).
"""
