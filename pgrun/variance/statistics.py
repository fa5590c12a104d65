"""What K independent gradient estimates g_1..g_K [K, P] say about their estimator.

With g_bar their mean, Sigma their covariance and g* the reference gradient:
    total variance     tr Sigma, by the unbiased sample covariance
    SNR                |E g|^2 / tr Sigma, with |E g|^2 estimated as |g_bar|^2 - tr Sigma / K
    cosine             mean_k cos(g_k, g*); between batches, mean over pairs k != l of cos(g_k, g_l);
                       of the mean, cos(g_bar, g*)
    bias               |E g - g*|, from |g_bar - g*|^2 - tr Sigma / K - tr Sigma* / M (M reference
                       estimates g*_1..g*_M behind a sampled reference; none behind an exact one),
                       unbiased for |E g - g*|^2. Its interval is the basic bootstrap one
                       (Efron & Tibshirani 1993, 13.4) over the K estimates and the M reference
                       ones: the resamples' spread around the plug-in value |g_bar - g*|^2,
                       which is what the resampled estimate estimates, set around the estimate.
                       An unbiased estimator's interval reaches zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95


@dataclass
class Reference:
    """The reference gradient g* and, if it was sampled, the M estimates whose mean it is."""

    gradient: Tensor
    estimates: Tensor | None = None

    @property
    def variance_of_mean(self) -> float:
        """tr Cov(g*): 0 for an exact reference."""
        return 0.0 if self.estimates is None else total_variance(self.estimates) / len(self.estimates)


@dataclass
class Summary:
    total_variance: float
    snr: float
    cosine_reference: float
    cosine_between: float
    cosine_mean: float
    bias: float
    bias_low: float
    bias_high: float

    @property
    def bias_excludes_zero(self) -> bool:
        return self.bias_low > 0.0


def total_variance(estimates: Tensor) -> float:
    """tr of the sample covariance of the rows of [K, P]."""
    return estimates.var(dim=0).sum().item()


def cosines(a: Tensor, b: Tensor) -> Tensor:
    """cos between each row of a [K, P] and each row of b [L, P], [K, L]."""
    return torch.nn.functional.normalize(a, dim=1) @ torch.nn.functional.normalize(b, dim=1).T


def mean_pairwise_cosine(estimates: Tensor) -> float:
    """mean over pairs k != l of cos(g_k, g_l): how much two independent batches agree."""
    k = len(estimates)
    if k < 2:
        return float("nan")
    similarity = cosines(estimates, estimates)
    return ((similarity.sum() - similarity.diagonal().sum()) / (k * (k - 1))).item()


def squared_bias(
    means: Tensor, variances: Tensor, k: int, reference: Tensor, reference_variance: Tensor
) -> Tensor:
    """|g_bar - g*|^2 - tr Sigma / K - tr Var g*, elementwise over resamples (the first axis)."""
    return (means - reference).pow(2).sum(-1) - variances / k - reference_variance


def bootstrap_counts(rows: int, generator: torch.Generator) -> Tensor:
    """[BOOTSTRAP_RESAMPLES, rows]: how often each resample draws each row."""
    picks = torch.randint(rows, (BOOTSTRAP_RESAMPLES, rows), generator=generator)
    return torch.zeros(BOOTSTRAP_RESAMPLES, rows, dtype=torch.float64).scatter_add_(
        1, picks, torch.ones_like(picks, dtype=torch.float64)
    )


def resampled_squared_bias(estimates: Tensor, reference: Reference, generator: torch.Generator) -> Tensor:
    """The squared-bias estimate of each bootstrap resample of the K estimates (and of the M
    reference ones), [BOOTSTRAP_RESAMPLES]. Computed from Gram matrices (K x K, K x M, M x M):
    a resample's mean is counts @ rows / K, so |mean|^2, its products and the traces of the
    covariances are quadratic forms of the counts, and no [resamples, P] array is made."""
    k = len(estimates)
    counts = bootstrap_counts(k, generator)
    gram = estimates @ estimates.T
    mean_sq = ((counts @ gram) * counts).sum(1) / k**2
    trace = (counts @ gram.diagonal() / k - mean_sq) * k / (k - 1)
    if reference.estimates is None:
        cross = counts @ (estimates @ reference.gradient) / k
        reference_sq, reference_trace = reference.gradient.pow(2).sum(), torch.zeros(())
    else:
        rows = reference.estimates.double()
        m = len(rows)
        reference_counts = bootstrap_counts(m, generator)
        reference_gram = rows @ rows.T
        reference_sq = ((reference_counts @ reference_gram) * reference_counts).sum(1) / m**2
        covariance_trace = (reference_counts @ reference_gram.diagonal() / m - reference_sq) * m / (m - 1)
        reference_trace = covariance_trace / m
        cross = ((counts @ (estimates @ rows.T)) * reference_counts).sum(1) / (k * m)
    return mean_sq - 2 * cross + reference_sq - trace / k - reference_trace


def summarize(estimates: Tensor, reference: Reference, seed: int = 0) -> Summary:
    """The summary of K >= 2 estimates [K, P] against `reference` (float64)."""
    estimates = estimates.double()
    k = len(estimates)
    mean, variance = estimates.mean(0), total_variance(estimates)
    signal = mean.pow(2).sum().item() - variance / k
    bias2 = squared_bias(
        mean, torch.tensor(variance), k, reference.gradient, torch.tensor(reference.variance_of_mean)
    )
    resampled = resampled_squared_bias(estimates, reference, torch.Generator().manual_seed(seed))
    alpha = (1 - CONFIDENCE) / 2
    q_low, q_high = torch.quantile(resampled, torch.tensor([alpha, 1 - alpha], dtype=torch.float64)).tolist()
    plug_in = (mean - reference.gradient).pow(2).sum().item()
    low, high = bias2.item() - (q_high - plug_in), bias2.item() - (q_low - plug_in)
    return Summary(
        total_variance=variance,
        snr=signal / variance if variance > 0 else float("inf"),
        cosine_reference=cosines(estimates, reference.gradient.unsqueeze(0)).mean().item(),
        cosine_between=mean_pairwise_cosine(estimates),
        cosine_mean=cosines(mean.unsqueeze(0), reference.gradient.unsqueeze(0)).item(),
        bias=max(bias2.item(), 0.0) ** 0.5,
        bias_low=max(low, 0.0) ** 0.5,
        bias_high=max(high, 0.0) ** 0.5,
    )
