"""The variance lab (pgrun-variance): its statistics, its exact reference, the bias it finds on a
finite MDP, the variance ordering on CartPole, the paired design, and the command on real runs."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tests_support import main_runner, shipped_config, tiny

import pgrun
from pgrun.config import config_dir
from pgrun.variance.lab import Measurement, Settings, all_state_log_probs, tabular_model
from pgrun.variance.sampling import EpisodeSampler
from pgrun.variance.statistics import Reference, squared_bias, summarize
from pgrun.variance.subjects import checkpoint_subject, fresh_subject
from pgrun.variance.tabular_mdp import exact_gradient

ALGOS = sorted(path.stem for path in (config_dir() / "algo").glob("*.yaml"))
PGRUN_VARIANCE = str(Path(sys.executable).parent / "pgrun-variance")
MDP = ["env.id=pgrun.variance.tabular_mdp:RandomMDP", "env.max_episode_steps=10"]
"""the finite MDP of pgrun.variance.tabular_mdp: 4 states, 2 actions, 6 steps"""


def by_name(rows: list[dict], batch_steps: int | None = None) -> dict[str, dict]:
    """The rows of one batch size (the largest if None), by estimator."""
    size = batch_steps if batch_steps is not None else max(row["batch_steps"] for row in rows)
    return {row["estimator"]: row for row in rows if row["batch_steps"] == size}


# --- statistics of K estimates -------------------------------------------------------------


def gaussian_estimates(mean: torch.Tensor, k: int, std: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return mean + std * torch.randn(k, len(mean), generator=generator, dtype=torch.float64)


def test_summary_of_unbiased_gaussian_estimates():
    truth = torch.linspace(-1, 1, 50, dtype=torch.float64)
    estimates = gaussian_estimates(truth, k=400, std=0.5, seed=0)
    summary = summarize(estimates, Reference(truth))
    assert summary.total_variance == pytest.approx(50 * 0.25, rel=0.05)
    signal = truth.pow(2).sum().item()
    assert summary.snr == pytest.approx(signal / (50 * 0.25), rel=0.1)
    assert summary.bias_low == 0.0  # the interval reaches zero
    assert summary.bias_high > 0.0
    assert summary.cosine_mean > 0.99


def test_squared_bias_estimate_is_unbiased():
    """|g_bar - g*|^2 overstates |E g - g*|^2 by tr Sigma / K; the estimate takes it off."""
    truth = torch.linspace(-1, 1, 50, dtype=torch.float64)
    values = []
    for seed in range(200):
        estimates = gaussian_estimates(truth, k=20, std=0.5, seed=seed)
        variance = torch.tensor(estimates.var(0).sum().item())
        values.append(squared_bias(estimates.mean(0), variance, 20, truth, torch.tensor(0.0)).item())
    values = torch.tensor(values)
    assert abs(values.mean()) < 3 * values.std() / len(values) ** 0.5  # the naive one: 50 * 0.25 / 20 off


def test_summary_finds_a_bias_smaller_than_the_noise_of_one_estimate():
    truth = torch.linspace(-1, 1, 50, dtype=torch.float64)
    shift = torch.full_like(truth, 0.05)  # |bias| = 0.35, while one estimate's noise is 3.5
    estimates = gaussian_estimates(truth + shift, k=400, std=0.5, seed=1)
    summary = summarize(estimates, Reference(truth))
    assert summary.bias_excludes_zero
    assert summary.bias_low < shift.norm().item() < summary.bias_high


def test_a_sampled_reference_widens_the_interval():
    truth = torch.linspace(-1, 1, 50, dtype=torch.float64)
    estimates = gaussian_estimates(truth, k=100, std=0.5, seed=2)
    reference_estimates = gaussian_estimates(truth, k=100, std=0.5, seed=3)
    sampled = summarize(estimates, Reference(reference_estimates.mean(0), reference_estimates))
    exact = summarize(estimates, Reference(truth))
    assert sampled.bias_low == 0.0
    assert sampled.bias_high - sampled.bias_low > exact.bias_high - exact.bias_low


# --- the exact reference -----------------------------------------------------------------------


def test_exact_gradient_is_the_gradient_of_the_return_at_gamma_1():
    """With gamma = 1 the lab's exact reference is grad J, J by dynamic programming."""
    subject = fresh_subject(shipped_config("algo=vpg", *MDP))
    try:
        model, policy = tabular_model(subject), subject.parts.policy
        parameters = list(policy.parameters())
        log_probs = all_state_log_probs(subject, *model.reward.shape)
        pi, reward = log_probs.exp().double(), torch.as_tensor(model.reward)
        transition = torch.as_tensor(model.transition)
        v = torch.zeros(len(model.start), dtype=torch.float64)
        for _ in range(model.horizon):
            v = (pi * (reward + transition @ v)).sum(-1)
        objective = torch.as_tensor(model.start) @ v
        autograd = torch.cat(
            [g.flatten() for g in torch.autograd.grad(objective, parameters, retain_graph=True)]
        ).double()
        exact = exact_gradient(model, log_probs, parameters, gamma=1.0)
        # both backpropagate through the float32 network: equal up to its rounding
        torch.testing.assert_close(exact, autograd, rtol=1e-5, atol=1e-6)
        assert autograd.abs().max() > 0.01
    finally:
        subject.close()


# --- bias on the finite MDP ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def mdp_rows(tmp_path_factory):
    """algo=baseline at its initialization (an untrained critic: V far from V^pi); the stale
    policy of is:2 two updates (Adam, lr 0.04) away; gamma 1, so that every unbiased estimator
    estimates grad J."""
    result = pgrun.measure_variance(
        None,
        ["algo=baseline", "algo.optim.lr=0.04", "algo.batch_size=64", *MDP, "log.console=false"],
        out_dir=tmp_path_factory.mktemp("mdp"),
        estimators=["total_return", "reward_to_go", "value_baseline", "is:2", "gae:0", "is:2:0.7"],
        batch_steps=[40, 800],
        batches=60,
        gamma=1.0,
        num_envs=16,
        progress=False,
    )
    return result.rows


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["total_return", "reward_to_go", "value_baseline", "is:2"])
def test_unbiased_estimators_converge_to_the_exact_gradient(mdp_rows, estimator):
    row = by_name(mdp_rows)[estimator]
    assert row["reference"] == "exact"
    assert row["bias_low"] == 0.0, row  # its interval reaches zero
    assert row["cosine_mean"] > 0.9, row  # the mean of 60 x 133 episodes points at grad J
    small = by_name(mdp_rows, 40)[estimator]
    assert row["bias_high"] < small["bias_high"]  # and comes closer than that of 60 x 7
    assert row["cosine_reference"] > small["cosine_reference"]  # one batch of 133 episodes vs 7


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["gae:0", "is:2:0.7"])
def test_biased_estimators_show_their_bias(mdp_rows, estimator):
    """GAE with lambda 0 against an untrained critic; importance weights truncated at 0.7."""
    row = by_name(mdp_rows)[estimator]
    assert row["bias_low"] > 0.0, row
    assert row["relative_bias"] > 0.1, row


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["total_return", "reward_to_go", "value_baseline"])
def test_variance_falls_like_one_over_the_episodes(mdp_rows, estimator):
    small, large = by_name(mdp_rows, 40)[estimator], by_name(mdp_rows, 800)[estimator]
    assert (small["episodes"], large["episodes"]) == (7, 133)
    ratio = (small["total_variance"] * small["episodes"]) / (large["total_variance"] * large["episodes"])
    assert 0.8 < ratio < 1.25, ratio  # measured 0.93, 1.10, 1.10


@pytest.mark.slow
def test_stale_policy_is_far_enough_for_the_weights_to_matter(mdp_rows):
    assert by_name(mdp_rows)["is:2"]["ess_fraction"] < 0.95


# --- the paired design --------------------------------------------------------------------------


def test_every_estimator_sees_the_same_batches():
    """With one-step episodes R(tau) and the reward-to-go coincide; on shared batches their
    estimates are then equal batch by batch, at every batch size."""
    config = shipped_config("algo=vpg", *MDP, "+env.kwargs.horizon=1")
    settings = Settings(
        ["total_return", "reward_to_go", "reward_to_go+norm"], [5, 20], batches=4, progress=False
    )
    subject = fresh_subject(config)
    try:
        measurement = Measurement(subject, settings, settings.checked())
        measurement.run()
    finally:
        subject.close()
    estimates = measurement.estimates
    for size in (5, 20):
        total, to_go = (
            torch.stack(estimates["total_return", size]),
            torch.stack(estimates["reward_to_go", size]),
        )
        assert torch.equal(total, to_go)
        assert total.std(0).sum() > 0  # the batches themselves differ
        assert not torch.equal(total, torch.stack(estimates["reward_to_go+norm", size]))


# --- CartPole ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory):
    """PPO on CartPole (no tuned preset) for 4,096 steps: half-way to solving it (eval ~160), a
    critic partly fitted (V's learning rate 1e-3, the default before ppo's became SB3's
    3e-4, with which 4,096 steps fit it too little to show the baseline's effect); a
    checkpoint every 2,048 steps."""
    run_dir = tmp_path_factory.mktemp("variance") / "ppo"
    overrides = [
        "algo=ppo", "env=cartpole", "tuned=null", "total_steps=4096", "checkpoint.every=2048",
        "algo.value.lr=0.001",
    ]  # fmt: skip
    pgrun.train([*overrides, "log.console=false", "eval.every=4096"], run_dir=run_dir)
    return run_dir


@pytest.fixture(scope="module")
def cartpole_rows(cartpole_run):
    return pgrun.measure_variance(
        cartpole_run,
        estimators=["total_return", "reward_to_go", "value_baseline"],
        batch_steps=[250, 1000, 4000],
        batches=30,
        reference_batches=15,
        progress=False,
    )


@pytest.mark.slow
def test_cartpole_variance_falls_from_total_return_to_reward_to_go_to_a_baseline(cartpole_rows):
    for size in (250, 1000, 4000):
        rows = by_name(cartpole_rows.rows, size)
        names = ("total_return", "reward_to_go", "value_baseline")
        total, to_go, baseline = (rows[name]["total_variance"] for name in names)
        assert total > 2 * to_go, rows  # measured: 3-4x at each size
        assert to_go > 2 * baseline, rows  # measured: 3-4x


@pytest.mark.slow
def test_cartpole_cosine_to_the_reference_grows_with_the_batch(cartpole_rows):
    for name in ("total_return", "reward_to_go", "value_baseline"):
        cosines = [by_name(cartpole_rows.rows, size)[name]["cosine_reference"] for size in (250, 1000, 4000)]
        assert cosines[0] < cosines[1] < cosines[2], (name, cosines)


@pytest.mark.slow
def test_cartpole_variance_falls_like_one_over_the_batch(cartpole_rows):
    """Between 22 and 88 episodes per batch. (At 6 the sample variance of 30 heavy-tailed
    estimates runs low: variance x episodes measured 0.48-0.67 of that at 88; the finite
    MDP's light tails show the law down to 7 episodes, below.)"""
    for name in ("total_return", "reward_to_go", "value_baseline"):
        small, large = by_name(cartpole_rows.rows, 1000)[name], by_name(cartpole_rows.rows, 4000)[name]
        ratio = (small["total_variance"] * small["episodes"]) / (large["total_variance"] * large["episodes"])
        assert 0.5 < ratio < 2.0, (name, ratio)  # variance x episodes stays put over a 4x range


@pytest.mark.slow
def test_outputs_are_written_and_rerunnable(cartpole_rows):
    out = cartpole_rows.out_dir
    assert out.parent.name == "variance" and out.parent.parent.name == "ppo"
    with open(out / "results.csv", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == 9
    assert "| value_baseline | 4,000 |" in (out / "results.md").read_text()
    record = json.loads((out / "measurement.json").read_text())
    assert record["settings"]["batch_steps"] == [250, 1000, 4000] and record["checkpoints"]
    assert record["command"].startswith(
        f"pgrun-variance {out.parent.parent} --at 4096 --estimators total_return"
    )
    assert (out / "variance_vs_batch.png").stat().st_size > 10_000


# --- any run dir, any checkpoint, the command -------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("algo", ALGOS)
def test_measures_a_run_dir_of_every_algorithm(tmp_path, algo):
    """value_baseline (the run's critic, or one fitted for runs without) and is:1 (one more
    update of the run's own algorithm) on the run's final checkpoint."""
    run_dir = tmp_path / algo
    pgrun.train(tiny(algo), run_dir=run_dir)
    result = pgrun.measure_variance(
        run_dir,
        estimators=["reward_to_go", "value_baseline", "is:1"],
        batch_steps=[60],
        batches=3,
        reference_batches=2,
        critic_fit_steps=300,
        progress=False,
    )
    rows = by_name(result.rows)
    newest = sorted((run_dir / "checkpoints").glob("step_*.pt"))[-1]
    assert rows["reward_to_go"]["env_steps"] == int(newest.stem.removeprefix("step_")) >= 1200
    assert all(row["total_variance"] > 0 for row in rows.values())
    assert 0 < rows["is:1"]["ess_fraction"] <= 1


@pytest.mark.slow
def test_rewards_are_those_the_run_learned_from(tmp_path):
    """With env.normalize_reward the critic predicts returns of rewards divided by the run's
    std: the lab's batches carry those rewards (CartPole's 1 per step becomes 1 / std)."""
    run_dir = tmp_path / "scaled"
    pgrun.train([*tiny("ppo"), "env.normalize_reward=true"], run_dir=run_dir)
    subject = checkpoint_subject(sorted((run_dir / "checkpoints").glob("step_*.pt"))[-1])
    try:
        assert subject.reward_std > 2  # the std of CartPole's discounted returns, far from 1
        measurement = Measurement(subject, Settings(), Settings().checked())
        sampler = EpisodeSampler(
            subject.parts.envs, subject.parts.policy, subject.parts.preprocessor, 0, *measurement.reward_units
        )
        batch = sampler.batch(4)
    finally:
        subject.close()
    rewards = batch.flat(batch.rewards)
    torch.testing.assert_close(rewards, torch.full_like(rewards, 1 / subject.reward_std))


def run_variance(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PGRUN_VARIANCE, *map(str, args)],
        cwd=cwd,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_command_on_a_checkpoint_file(cartpole_run, tmp_path):
    checkpoint = sorted((cartpole_run / "checkpoints").glob("step_*.pt"))[0]
    result = run_variance(
        checkpoint, "--estimators", "reward_to_go", "gae:0.9+norm", "--batch-steps", "200", "--batches", "3",
        "--out", tmp_path / "out", "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "| gae:0.9+norm | 200 |" in result.stdout
    assert f"at {int(checkpoint.stem.removeprefix('step_')):,} env steps" in result.stdout
    assert (tmp_path / "out" / "results.csv").is_file()


@pytest.fixture
def run_main(monkeypatch, capsys):
    """pgrun-variance's main() in this process: (exit code, stdout, stderr)."""
    from pgrun.cli import variance as variance_cli

    return main_runner(monkeypatch, capsys, "pgrun-variance", variance_cli.main)


def one_error_line(result: subprocess.CompletedProcess, *words: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("pgrun-variance: error: "), result.stderr
    assert all(word in lines[0] for word in words), lines[0]
    return lines[0]


@pytest.mark.slow
def test_errors_are_one_line_and_write_nothing(cartpole_run, tmp_path, run_main, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(cartpole_run.rglob("*"))
    one_error_line(run_main(tmp_path / "nowhere"), "nowhere", "no such run dir")
    empty = tmp_path / "empty_run"
    empty.mkdir()
    one_error_line(run_main(empty), "empty_run", "no checkpoints")
    one_error_line(
        run_main(cartpole_run, "--estimators", "reward_to_go", "advantage"), "'advantage'", "gae:LAMBDA"
    )
    one_error_line(run_main(cartpole_run, "--estimators", "gae:1.5"), "'gae:1.5'")
    one_error_line(run_main(cartpole_run, "--estimators", "is:0"), "'is:0'", "K >= 1")
    one_error_line(run_main(cartpole_run, "--batches", "1"), "--batches=1", ">= 2")
    one_error_line(run_main(cartpole_run, "--gamma", "1.5"), "--gamma=1.5")
    one_error_line(run_main(), "--config")
    one_error_line(run_main("--config", "algo=nope"), "--config algo=nope: algo=nope is not allowed: must be")
    one_error_line(run_main("--config", "algo=ppo", "algo.clip=-1"), "algo.clip=-1: algo.clip=-1.0 is not")
    one_error_line(run_main("--config", "algo=ppo", "--at", "100"), "--at")
    checkpoint = sorted((cartpole_run / "checkpoints").glob("step_*.pt"))[0]
    broken = tmp_path / "broken.pt"
    broken.write_bytes(checkpoint.read_bytes()[:1000])
    one_error_line(run_main(broken), "broken.pt", "not a readable pgrun checkpoint")
    assert sorted(cartpole_run.rglob("*")) == before
    assert sorted(tmp_path.iterdir()) == [broken, empty]
