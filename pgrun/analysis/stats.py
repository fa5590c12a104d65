"""Statistics over seeds: sample std, interquartile mean and a bootstrap confidence interval.

The definitions are rliable's (Agarwal et al. 2021, "Deep Reinforcement Learning at the
Edge of the Statistical Precipice"): the IQM is the 25% trimmed mean
(`scipy.stats.trim_mean(x, 0.25)`), and the interval is the percentile bootstrap over runs,
which for runs of one task is rliable's stratified bootstrap (resampling runs with
replacement within each task). rliable itself is not a dependency: it pulls in arch,
statsmodels, pandas and seaborn for these few lines.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

CONFIDENCE = 0.95
TABLE_RESAMPLES = 50_000
"""bootstrap resamples for the table's intervals (rliable's default)"""

Statistic = Callable[[np.ndarray], np.ndarray]
"""reduces the last axis: [..., runs] -> [...]"""


def sample_std(values: np.ndarray) -> float:
    """The sample standard deviation sqrt(sum (x - mean)^2 / (n - 1)); NaN for one value."""
    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1)) if len(values) > 1 else float("nan")


def mean(values: np.ndarray) -> np.ndarray:
    """The mean over the last axis."""
    return np.asarray(values, dtype=float).mean(axis=-1)


def interquartile_mean(values: np.ndarray) -> np.ndarray:
    """IQM over the last axis: the mean of the values left after dropping floor(n/4) of the
    lowest and floor(n/4) of the highest of n (scipy's trim_mean with 0.25, as in rliable).
    With fewer than 4 values nothing is dropped and the IQM is the mean."""
    ordered = np.sort(np.asarray(values, dtype=float), axis=-1)
    n = ordered.shape[-1]
    cut = int(0.25 * n)
    return ordered[..., cut : n - cut].mean(axis=-1)


STATISTICS: dict[str, Statistic] = {"mean": mean, "iqm": interquartile_mean}


def bootstrap_ci(
    values: np.ndarray,
    statistic: Statistic = mean,
    resamples: int = TABLE_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """The percentile bootstrap interval of statistic(values) over runs.

    Draws `resamples` sets of n runs with replacement from the n values, applies the
    statistic to each and returns the (1 - confidence)/2 and (1 + confidence)/2 quantiles
    of the results (linear interpolation, as numpy's percentile). Deterministic for a given
    seed. NaN for fewer than 2 values, where resampling says nothing about the spread.
    """
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = values[rng.integers(0, len(values), size=(resamples, len(values)))]
    estimates = statistic(draws)
    tail = (1 - confidence) / 2
    low, high = np.quantile(estimates, [tail, 1 - tail])
    return float(low), float(high)
