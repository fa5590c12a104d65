"""What the episodes finished between two logged rows add up to: their mean return and length,
their count, and the means of the info values the env reported at their ends."""

from __future__ import annotations

import numpy as np


class EpisodeStats:
    """Returns, lengths and info values (log.info_keys) of the episodes finished since the
    last logged iteration."""

    def __init__(self) -> None:
        self.returns: list[float] = []
        self.lengths: list[int] = []
        self.info: dict[str, list[float]] = {}

    def add(
        self, returns: list[float], lengths: list[int], info: dict[str, list[float]] | None = None
    ) -> None:
        self.returns += returns
        self.lengths += lengths
        for key, values in (info or {}).items():
            self.info.setdefault(key, []).extend(values)

    def scalars(self) -> dict[str, float]:
        """Their means (NaN, i.e. not logged, if none finished) and count; then start afresh.
        An info key's mean is env/<key>, is_success's env/success_rate."""
        returns, lengths, info = self.returns, self.lengths, self.info
        self.returns, self.lengths, self.info = [], [], {}
        scalars = {
            "charts/episodic_return": float(np.mean(returns)) if returns else float("nan"),
            "charts/episodic_length": float(np.mean(lengths)) if lengths else float("nan"),
            "charts/episodes": float(len(returns)),
        }
        for key, values in info.items():
            name = "success_rate" if key == "is_success" else key
            scalars[f"env/{name}"] = float(np.mean(values)) if values else float("nan")
        return scalars
