"""Atari through the ALE (pgrun[atari]): gymnasium's preprocessing on real games, the learner's
view of rewards and lives beside the logged game scores, FIRE on reset, exact resumes with
sticky actions, and the one-line refusals."""

import json

import numpy as np
import pytest
import torch
from tests_support import StopAt, learning_rows, main_runner, pgrun, shipped_config

import pgrun as api
from pgrun.collection.atari import LifeLoss
from pgrun.collection.collector import Collector
from pgrun.collection.envs import episode_step_limit, make_vector_env
from pgrun.collection.normalization import ObservationPreprocessor, RewardScaler
from pgrun.config import AtariConfig, ConfigError, EnvConfig, PolicyConfig
from pgrun.networks.policy import make_policy


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread, as runs have it (torch_threads=1): oneDNN's convolutions on a batch
    of one image are 20x slower with threads that wait for a busy core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def atari_collector(env_id: str, steps: int, seed: int = 0, **options) -> tuple:
    """A collector of `steps`-step batches on one copy of `env_id` (frames of 42x42, the smallest
    the Nature CNN reads is 36: a cheap network) with a random policy."""
    scaler, life_loss = options.pop("scaler", None), options.pop("life_loss", None)
    config = EnvConfig(id=env_id, atari=AtariConfig(screen_size=42, **options))
    envs = make_vector_env(config, 1, info_keys=["lives"] if life_loss else [])
    preprocessor = ObservationPreprocessor(envs.single_observation_space)
    torch.manual_seed(seed)
    policy = make_policy(preprocessor.layout, envs.single_action_space, PolicyConfig(hidden_sizes=[8]))
    collector = Collector(
        envs, policy, preprocessor, "steps", steps, seed=seed, reward_scaler=scaler, life_loss=life_loss
    )
    return envs, collector


def test_the_standard_preprocessing_gives_stacks_of_four_84x84_byte_frames():
    envs = make_vector_env(EnvConfig(id="ALE/Pong-v5"), 2)
    obs, _ = envs.reset(seed=0)
    assert envs.single_observation_space.shape == (4, 84, 84)
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    for _ in range(60):  # (Pong serves after about a second)
        obs, *_ = envs.step(np.zeros(2, dtype=np.int64))
    # the four stacked frames are successive frames of a moving game, not one frame repeated
    assert len({frame.tobytes() for frame in obs[0]}) > 1
    envs.close()
    # the game runs one frame per step underneath; the 108,000-frame limit counts agent steps
    assert envs.envs[0].unwrapped._frameskip == 1
    assert episode_step_limit(EnvConfig(id="ALE/Pong-v5")) == (27_000, False)


def test_the_learner_sees_the_sign_of_rewards_while_logged_returns_are_game_scores():
    """SpaceInvaders scores 5 to 30 points an invader: the learner's rewards are their signs,
    and the episode's logged return the game's score, as the same episode without signs sums it."""
    steps = 700
    signed_envs, signed = atari_collector(
        "ALE/SpaceInvaders-v5", steps, scaler=RewardScaler(1, 0.99, None, sign=True, normalize=False)
    )
    raw_envs, raw = atari_collector("ALE/SpaceInvaders-v5", steps)
    torch.manual_seed(0)
    signed_batch = signed.collect()
    torch.manual_seed(0)
    raw_batch = raw.collect()
    signed_envs.close()
    raw_envs.close()
    assert torch.equal(signed_batch.actions, raw_batch.actions)  # one episode, seen two ways
    assert raw_batch.rewards.max() >= 5
    assert torch.equal(signed_batch.rewards, torch.sign(raw_batch.rewards))
    assert signed_batch.episode_returns, "no episode ended: lengthen the batch"
    assert signed_batch.episode_returns == raw_batch.episode_returns
    first_end = int(torch.nonzero(raw_batch.terminated[:, 0])[0])
    assert signed_batch.episode_returns[0] == raw_batch.rewards[: first_end + 1].sum().item()
    assert signed_batch.episode_returns[0] > signed_batch.rewards[: first_end + 1].sum().item()


def test_with_episodic_life_a_lost_life_is_terminal_for_the_learner_and_the_game_goes_on():
    envs, collector = atari_collector("ALE/Breakout-v5", 2000, life_loss=LifeLoss(), fire_on_reset=True)
    batch = collector.collect()
    envs.close()
    ends = torch.nonzero(batch.terminated[:, 0]).flatten().tolist()
    assert batch.episode_lengths, "no game ended: lengthen the batch"
    game_over = batch.episode_lengths[0] - 1
    # Breakout's five lives: four lost lives end the learner's episodes, the fifth the game;
    # the logged episode is the whole game
    assert len([end for end in ends if end <= game_over]) == 5 and game_over in ends
    assert batch.truncated[: game_over + 1, 0].sum() == 0


def test_fire_on_reset_launches_the_ball_that_breakout_otherwise_holds():
    """A policy that never presses FIRE: Breakout waits for ever unless FIRE is pressed for it."""
    for fire, lives_lost in [(False, False), (True, True)]:
        envs = make_vector_env(EnvConfig(id="ALE/Breakout-v5", atari=AtariConfig(fire_on_reset=fire)), 1)
        envs.reset(seed=0)
        lives = []
        for _ in range(100):
            envs.step(np.zeros(1, dtype=np.int64))  # NOOP only: the paddle never moves
            lives.append(envs.envs[0].unwrapped.ale.lives())
        assert (min(lives) < 5) == lives_lost
        envs.close()


def test_a_game_without_fire_refuses_fire_on_reset():
    config = EnvConfig(id="ALE/Freeway-v5", atari=AtariConfig(fire_on_reset=True))
    with pytest.raises(ConfigError, match="needs a FIRE action; this game's are NOOP, UP, DOWN"):
        make_vector_env(config, 1)


def test_an_atari_collector_resumes_exactly_with_sticky_actions():
    """ALE v5 repeats the last action with probability 0.25, drawn from the ALE's own generator:
    an episode replayed from its start reaches the same frames only if that generator is
    restored too (pgrun.collection.atari.ALERandomness). 400 steps with episodes of ~200 (a
    random agent's Breakout, FIRE pressed for it) put the checkpoint in the second episode."""
    envs, collector = atari_collector("ALE/Breakout-v5", 400, fire_on_reset=True)
    collector.collect()
    state = collector.state_dict()
    expected = collector.collect()
    envs.close()
    assert len(expected.episode_returns) >= 1
    resumed_envs, resumed = atari_collector("ALE/Breakout-v5", 400, seed=1, fire_on_reset=True)
    resumed.policy.load_state_dict(collector.policy.state_dict())
    resumed.load_state_dict(state)
    torch.manual_seed(7)
    again = resumed.collect()
    torch.manual_seed(7)
    resumed.load_state_dict(state)
    twice = resumed.collect()
    resumed_envs.close()
    assert torch.equal(again.obs, twice.obs) and torch.equal(again.rewards, twice.rewards)


def test_atari_keys_on_other_envs_and_a_second_frame_skip_are_refused(tmp_path):
    result = pgrun("env=cartpole", "env.atari.noop_max=10", cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "pgrun: error: env.atari.noop_max=10 does nothing with env.id=CartPole-v1: it preprocesses "
        "ALE games only; leave it out"
    )
    config = EnvConfig(id="ALE/Pong-v5", kwargs={"frameskip": 4})
    with pytest.raises(ConfigError, match=r"frameskip=4 is not allowed with env.atari.frame_skip=4"):
        make_vector_env(config, 1)


def test_env_atari_without_a_game_is_one_line(tmp_path):
    result = pgrun("algo=ppo", "env=atari", cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "pgrun: error: env.id is missing: this env group runs any game named by env.id "
        "(env=atari env.id=ALE/Pong-v5)"
    )


def test_the_atari_env_configs_and_the_ppo_preset_compose():
    config = shipped_config("algo=ppo", "env=breakout")
    assert (config.env.id, config.env.sign_reward, config.env.num_envs) == ("ALE/Breakout-v5", True, 8)
    algo = config.algo
    assert (algo.batch_size, algo.minibatch_size, algo.epochs) == (1024, 256, 4)
    assert (algo.clip, algo.ent_coef, algo.value.coef, algo.value.clip_range) == (0.1, 0.01, 0.25, 0.1)
    assert (algo.optim.lr, algo.optim.lr_schedule, algo.value.share_encoder) == (2.5e-4, "linear", True)
    assert (config.policy.encoder, config.total_steps) == ("nature_cnn", 10_000_000)
    assert shipped_config("algo=ppo", "env=atari", "env.id=ALE/Seaquest-v5").algo.clip == 0.1
    a2c = shipped_config("algo=a2c", "env=breakout")  # rl-baselines3-zoo's A2C: 16 x 5 steps, TF's RMSprop
    assert (a2c.env.num_envs, a2c.algo.batch_size, a2c.algo.value.coef, a2c.algo.ent_coef) == (
        16,
        80,
        0.25,
        0.01,
    )
    assert (a2c.algo.optim.name, a2c.algo.optim.eps, a2c.algo.value.share_encoder) == (
        "rmsprop_tf",
        1e-5,
        True,
    )
    assert a2c.policy.encoder == "nature_cnn"


@pytest.mark.slow
def test_a_ppo_run_on_pong_logs_game_scores_resumes_exactly_and_reads_back(tmp_path, monkeypatch, capsys):
    from pgrun.cli import evaluate

    def pgrun_eval_main(*args: str):
        return main_runner(monkeypatch, capsys, "pgrun-eval", evaluate.main)(*args)

    common = ["algo=ppo", "env=pong", "env.atari.screen_size=42", "env.num_envs=2", "algo.batch_size=128"]
    common += ["algo.minibatch_size=64", "algo.value.minibatch_size=64", "total_steps=512"]
    common += ["eval.every=256", "eval.episodes=1", "log.console=false", "log.every=1"]
    whole = api.train(common, run_dir=tmp_path / "whole")
    api.train(common, run_dir=tmp_path / "split", callbacks=[StopAt(256)])
    api.resume(tmp_path / "split")

    assert learning_rows(tmp_path / "split") == learning_rows(whole.run_dir)
    evaluations = [row["eval/return"] for row in learning_rows(whole.run_dir) if "eval/return" in row]
    assert len(evaluations) == 2 and all(-21 <= value <= 21 and value == int(value) for value in evaluations)
    # Its policy, read back from policy.pt, from the checkpoint at its end and from that
    # checkpoint as an older pgrun wrote it (no spaces: made from the saved env config, whose
    # env.atari is a nested dict to type again); pgrun-eval makes the env from it too.
    frames = np.random.default_rng(0).integers(0, 256, (3, 4, 42, 42), dtype=np.uint8)
    acted = api.load(whole.run_dir).act(frames)
    last = sorted((whole.run_dir / "checkpoints").glob("*.pt"))[-1]
    older = torch.load(last, weights_only=True)
    del older["spaces"]
    torch.save(older, tmp_path / last.name)
    for path in (last, tmp_path / last.name):
        assert (api.load(path).act(frames) == acted).all()
    evaluated = pgrun_eval_main(str(tmp_path / last.name), "--episodes", "1", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["env"] == "ALE/Pong-v5"
