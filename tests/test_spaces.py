"""Every space pgrun handles: observation layouts and their encoders, the uint8 storage of
images, Dict observations, MultiDiscrete and MultiBinary actions learned by every algorithm,
a value head on the policy's encoder, episode info, and the spaces refused at start."""

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from space_envs import EPISODE_STEPS
from tests_support import StopAt, metrics, pgrun, random_batch, random_like, small_policy, value_networks

import pgrun as api
from pgrun.algorithms.ppo import PPO, PPOConfig, PPOValueConfig
from pgrun.collection.collector import Collector
from pgrun.collection.envs import make_vector_env
from pgrun.collection.normalization import ObservationPreprocessor
from pgrun.config import EnvConfig, OptimizerConfig, PolicyConfig
from pgrun.estimation.estimators import Advantages
from pgrun.networks.encoders import ImageEncoder, MLPEncoder, MultiInputEncoder, SingleImageEncoder
from pgrun.networks.observations import UnsupportedSpace, observation_layout
from pgrun.networks.policy import make_policy
from pgrun.training.policy_file import describe_space, rebuild_space, same_kind_of_space

TESTS = Path(__file__).resolve().parent
IMAGE = gym.spaces.Box(0, 255, (84, 84, 4), dtype=np.uint8)
MINIGRID_LIKE = gym.spaces.Dict(
    {"image": gym.spaces.Box(0, 255, (7, 7, 3), dtype=np.uint8), "direction": gym.spaces.Discrete(4)}
)


def test_layouts_follow_the_space():
    vector = observation_layout(gym.spaces.Box(-1.0, 1.0, (4,), dtype=np.float32))
    assert vector.is_vector and vector.dim == 4 and vector.dtype == np.float32

    (frames,) = observation_layout(IMAGE).parts
    assert (frames.kind, frames.shape, frames.channels_first, frames.high) == (
        "image",
        (4, 84, 84),
        False,
        255.0,
    )
    (first,) = observation_layout(gym.spaces.Box(0, 255, (4, 84, 84), dtype=np.uint8)).parts
    assert first.shape == (4, 84, 84) and first.channels_first
    (grid,) = observation_layout(gym.spaces.Box(0, 1, (10, 10, 6), dtype=bool)).parts
    assert grid.shape == (6, 10, 10) and not grid.channels_first and grid.high == 1.0
    assert observation_layout(IMAGE).dtype == np.uint8  # 1 byte a pixel in the batch

    layout = observation_layout(MINIGRID_LIKE)  # gymnasium orders a Dict's keys: direction, image
    assert [(part.name, part.kind, part.start, part.size) for part in layout.parts] == [
        ("direction", "vector", 0, 4),
        ("image", "image", 4, 147),
    ]
    assert layout.dtype == np.uint8  # a one-hot and bytes: all byte-valued
    mixed = gym.spaces.Dict({"image": IMAGE, "speed": gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)})
    assert observation_layout(mixed).dtype == np.float32


def test_spaces_without_an_encoder_are_named():
    with pytest.raises(UnsupportedSpace, match=r"^env observation space Text"):
        observation_layout(gym.spaces.Text(5))
    with pytest.raises(UnsupportedSpace, match=r"entry 'mission' is a Text space"):
        observation_layout(gym.spaces.Dict({"mission": gym.spaces.Text(5), "x": gym.spaces.Discrete(2)}))


def test_dict_multidiscrete_and_multibinary_observations_become_one_vector():
    space = gym.spaces.Dict(
        {
            "a_choice": gym.spaces.Discrete(3, start=1),
            "b_dials": gym.spaces.MultiDiscrete([2, 3], start=[0, -1]),
            "c_bits": gym.spaces.MultiBinary(2),
            "d_value": gym.spaces.Box(-5.0, 5.0, (1,), dtype=np.float32),
        }
    )
    obs = {
        "a_choice": np.array([3, 1]),
        "b_dials": np.array([[1, -1], [0, 1]]),
        "c_bits": np.array([[1, 0], [0, 1]], dtype=np.int8),
        "d_value": np.array([[2.5], [-0.5]], dtype=np.float32),
    }
    features = ObservationPreprocessor(space)(obs)
    expected = [
        [0, 0, 1, 0, 1, 1, 0, 0, 1, 0, 2.5],  # choice 3 of 1..3; dials (1 of 0..1, -1 of -1..1); bits; value
        [1, 0, 0, 1, 0, 0, 0, 1, 0, 1, -0.5],
    ]
    assert features.dtype == torch.float32 and features.tolist() == expected


def test_images_are_kept_as_bytes_and_scaled_only_in_the_network():
    preprocessor = ObservationPreprocessor(IMAGE)
    frames = np.random.default_rng(0).integers(0, 256, (2, 84, 84, 4), dtype=np.uint8)
    stored = preprocessor(frames)
    assert stored.dtype == torch.uint8 and stored.shape == (2, 84 * 84 * 4)
    assert np.shares_memory(stored.numpy(), frames)  # not even copied
    encoder = make_policy(preprocessor.layout, gym.spaces.Discrete(3), PolicyConfig()).encoder
    scaled = torch.as_tensor(frames, dtype=torch.float32).permute(0, 3, 1, 2) / 255
    cnn = encoder.cnn
    expected = torch.relu(cnn.linear(cnn.convolutions(scaled)))
    torch.testing.assert_close(encoder(stored), expected)


def test_a_channels_first_image_is_stored_channels_last_and_read_as_the_env_gave_it():
    """A stack of Atari frames is (C, H, W); stored (H, W, C), the CNN still sees the frames."""
    frames = np.random.default_rng(1).integers(0, 256, (2, 4, 40, 40), dtype=np.uint8)
    whole = gym.spaces.Box(0, 255, (4, 40, 40), dtype=np.uint8)
    inside = gym.spaces.Dict({"frames": whole, "flag": gym.spaces.Discrete(2)})
    scaled = torch.as_tensor(frames, dtype=torch.float32) / 255
    for space, obs in [(whole, frames), (inside, {"frames": frames, "flag": np.array([0, 1])})]:
        preprocessor = ObservationPreprocessor(space)
        stored = preprocessor(obs)
        part = preprocessor.layout.images[0]
        assert part.channels_first and part.shape == (4, 40, 40)
        pixels = stored[:, part.columns].view(2, 40, 40, 4)
        assert pixels[1, 7, 30].tolist() == frames[1, :, 7, 30].tolist()  # (H, W, C)
        policy = make_policy(preprocessor.layout, gym.spaces.Discrete(3), PolicyConfig())
        if space is whole:
            cnn = policy.encoder.cnn
            expected = torch.relu(cnn.linear(cnn.convolutions(scaled)))
            torch.testing.assert_close(policy.encoder(stored), expected)


def conv_layers(encoder: ImageEncoder) -> list[tuple[int, int, int]]:
    return [
        (layer.out_channels, layer.kernel_size[0], layer.stride[0])
        for layer in encoder.convolutions
        if isinstance(layer, torch.nn.Conv2d)
    ]


def test_the_encoder_follows_the_observation_space():
    def encoder(space, **config):
        return make_policy(observation_layout(space), gym.spaces.Discrete(2), PolicyConfig(**config)).encoder

    assert type(encoder(gym.spaces.Box(-1.0, 1.0, (4,), dtype=np.float32))) is MLPEncoder
    nature = encoder(IMAGE)
    assert isinstance(nature, SingleImageEncoder)
    assert conv_layers(nature.cnn) == [(32, 8, 4), (64, 4, 2), (64, 3, 1)] and nature.out_dim == 512
    small = encoder(gym.spaces.Box(0, 1, (10, 10, 4), dtype=bool))
    assert conv_layers(small.cnn) == [(16, 3, 1)] and small.out_dim == 128
    multi = encoder(MINIGRID_LIKE)
    assert isinstance(multi, MultiInputEncoder) and conv_layers(multi.cnns[0]) == [(16, 3, 1)]
    assert multi.layers[0].in_features == 4 + 128  # the one-hot direction beside the grid's features
    flat = encoder(IMAGE, encoder="mlp")  # only when asked for
    assert type(flat) is MLPEncoder and flat.layers[0].in_features == 84 * 84 * 4


def test_a_batch_of_image_observations_is_stored_in_bytes():
    config = EnvConfig(id="space_envs:ImageContext", num_envs=8)
    envs = make_vector_env(config, 8)
    preprocessor = ObservationPreprocessor(envs.single_observation_space)
    policy = make_policy(preprocessor.layout, envs.single_action_space, PolicyConfig())
    batch = Collector(envs, policy, preprocessor, "steps", 8 * 16, seed=0).collect()
    envs.close()
    assert batch.obs.dtype == torch.uint8 and batch.obs.shape == (16, 8, 144)
    assert batch.next_obs.dtype == torch.uint8
    bright = batch.obs.view(16, 8, 12, 12)[0, 0].max(dim=0).values  # the band: 4 columns of 255
    assert sorted(bright.tolist()).count(255) == 4


MULTI_ACTION_FLOORS = {
    # env: (random play's return, the best, the floor every algorithm must reach in 10,000 steps)
    "MultiDiscreteMatch": (16 / 3, 16.0, 12.0),
    "MultiBinaryMatch": (4.0, 8.0, 6.0),
}
ALGOS = ("vpg", "rtg", "baseline", "is", "ppo", "ppo_penalty", "trpo", "npg", "a2c")


def short_run(tmp_path: Path, env: str, algo: str, *overrides: str) -> api.RunResult:
    batches = ["algo.batch_size=40"] if algo in ("vpg", "rtg", "baseline", "is") else []
    if algo not in ("vpg", "rtg", "baseline", "is", "a2c"):
        batches = ["algo.batch_size=512"]
    return api.train(
        [
            f"algo={algo}",
            f"env.id=space_envs:{env}",
            "env.num_envs=4",
            "total_steps=10000",
            "eval.every=100000000",
            "log.console=false",
            "log.tensorboard=false",
            "checkpoint.every=100000000",
            *batches,
            *overrides,
        ],
        run_dir=tmp_path / f"{env}_{algo}",
    )


@pytest.mark.slow
@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("env", MULTI_ACTION_FLOORS)
def test_every_algorithm_learns_multidiscrete_and_multibinary_actions(tmp_path, env, algo):
    random_play, best, floor = MULTI_ACTION_FLOORS[env]
    assert floor - random_play >= 0.5 * (best - random_play)  # the floor is at least halfway
    result = short_run(tmp_path, env, algo)
    assert result.summary["final_eval_return"] >= floor


@pytest.mark.slow
def test_dict_observations_are_learned_and_the_agent_acts_on_one(tmp_path):
    result = short_run(tmp_path, "DictContext", "ppo")
    assert result.summary["final_eval_return"] >= 7.0  # random play 2.7, best 8
    agent = api.load(result.run_dir)
    assert agent.act({"context": 2, "noise": np.zeros(2, dtype=np.float32)}) == 2
    assert agent.act({"context": 1, "noise": np.full(2, 5.0)}) == 1  # float64, out of bounds: still one
    batch = {"context": np.array([0, 1]), "noise": np.zeros((2, 2), dtype=np.float32)}
    assert agent.act(batch).tolist() == [0, 1]


@pytest.mark.slow
def test_an_image_env_is_learned_through_a_shared_cnn(tmp_path):
    result = short_run(
        tmp_path, "ImageContext", "ppo", "algo.value.share_encoder=true", "algo.value.iters=10"
    )
    assert result.summary["final_eval_return"] >= 7.0  # random play 2.7, best 8
    agent = api.load(result.run_dir)
    assert isinstance(agent.policy.encoder, SingleImageEncoder)


def test_a_shared_encoder_takes_one_step_on_the_joint_loss():
    """PPO with value.share_encoder on a tiny batch: one plain SGD step (lr 1, one epoch, one
    minibatch) moves the encoder, the policy head and the value head by minus the gradient of
    the loss built here by hand: -mean min(r A, clip(r) A) - c_H mean H + c_V mean (V(s) - R)^2,
    V = value head(policy's encoder(s))."""
    torch.manual_seed(0)
    config = PPOConfig(
        optim=OptimizerConfig(name="sgd", lr=1.0, lr_schedule="constant", max_grad_norm=None),
        epochs=1,
        minibatch_size=None,
        target_kl=None,
        ent_coef=0.01,
        value=PPOValueConfig(share_encoder=True, coef=0.5, iters=1, minibatch_size=None),
    )
    policy = small_policy(gym.spaces.Discrete(3))
    rule = PPO(config, policy, value_networks)
    assert rule.critic.encoder is policy.encoder
    batch = random_batch(policy, seed=1)
    phi, targets = random_like(batch.rewards, seed=2), random_like(batch.rewards, seed=3)
    obs, actions = batch.flat(batch.obs), batch.flat(batch.actions)

    learned = {
        **{f"policy.{name}": p for name, p in policy.named_parameters()},
        **{f"value_head.{name}": p for name, p in rule.critic.head.named_parameters()},
    }
    params = policy.distribution_params(obs)
    logp = policy.log_prob_from(params, actions)
    ratio = (logp - logp.detach()).exp()  # 1 at the first step, with the gradient of log pi
    advantages = batch.flat(phi)
    surrogate = torch.min(ratio * advantages, ratio.clamp(0.8, 1.2) * advantages).mean()
    values = rule.critic.head(policy.encoder(obs)).squeeze(-1)
    loss = -surrogate - 0.01 * policy.entropy_from(params).mean()
    loss = loss + 0.5 * (values - batch.flat(targets)).pow(2).mean()
    gradients = dict(zip(learned, torch.autograd.grad(loss, list(learned.values())), strict=True))
    expected = {name: (p - gradients[name]).detach() for name, p in learned.items()}

    rule.update(Advantages(batch, phi, value_targets=targets), progress=0.0)
    for name, p in learned.items():
        torch.testing.assert_close(p.detach(), expected[name], msg=name)
    assert gradients["value_head.weight"].abs().sum() > 0 and gradients["policy.head.weight"].abs().sum() > 0


def test_a_shared_encoder_needs_the_policys_minibatches():
    result = pgrun(
        "algo=ppo", "algo.value.share_encoder=true", "algo.value.iters=3", "total_steps=1000", cwd=TESTS
    )
    assert result.returncode == 2
    assert "algo.value.share_encoder" in result.stderr and "value.iters == epochs" in result.stderr


@pytest.mark.parametrize(
    ("env_id", "overrides", "message"),
    [
        ("space_envs:TextObservation", [], "env observation space Text"),
        ("space_envs:MatrixAction", [], "Box actions must be 1-D"),
        ("CartPole-v1", ["policy.encoder=nature_cnn"], "policy.encoder=nature_cnn reads one image"),
        ("space_envs:DictContext", ["env.obs_keys=[nope]"], "env.obs_keys: 'nope' is not an entry"),
    ],
)
def test_what_pgrun_cannot_encode_is_refused_before_a_run_dir_is_made(tmp_path, env_id, overrides, message):
    run_dir = tmp_path / "run"
    result = pgrun(f"env.id={env_id}", *overrides, f"hydra.run.dir={run_dir}", cwd=tmp_path, tests_dir=TESTS)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("pgrun: error")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert not run_dir.exists()


def test_episode_info_is_logged_at_episode_ends(tmp_path):
    result = api.train(
        [
            "algo=ppo",
            "env.id=space_envs:ReportsSuccess",
            "env.num_envs=3",
            "total_steps=3000",
            "algo.batch_size=300",
            "log.every=1",
            "log.info_keys=[is_success,steps_taken]",
            "log.console=false",
        ],
        run_dir=tmp_path / "run",
    )
    rows = [row for row in metrics(result.run_dir) if row.get("charts/episodes", 0) > 0]
    assert len(rows) == 10
    for row in rows:
        # every episode is 4 steps (a success) or 8: mean length = 8 - 4 * success rate
        assert row["env/steps_taken"] == pytest.approx(row["charts/episodic_length"])
        assert row["env/success_rate"] == pytest.approx((8 - row["charts/episodic_length"]) / 4)
        assert 0 < row["env/success_rate"] < 1


@pytest.mark.slow
@pytest.mark.parametrize("env", ["minatar_breakout", "minigrid_doorkey"])
def test_suite_runs_resume_exactly(tmp_path, env):
    """MinAtar draws from a random generator of its own (pgrun.collection.suites.MinAtarSeeding
    makes its episodes replayable); MiniGrid from the env's np_random. A run stopped at 1,024
    steps and resumed logs what the run that never stopped logged."""
    common = ["algo=ppo", f"env={env}", "algo.batch_size=512", "eval.every=1024", "eval.episodes=2"]
    common += ["log.console=false", "log.every=1", "env.num_envs=4", "total_steps=2048"]
    whole = api.train(common, run_dir=tmp_path / "whole")
    api.train(common, run_dir=tmp_path / "split", callbacks=[StopAt(1024)])
    api.resume(tmp_path / "split")

    def rows(run_dir):
        return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in metrics(run_dir)]

    assert len(rows(whole.run_dir)) == 4
    assert rows(tmp_path / "split") == rows(whole.run_dir)


def test_the_collector_records_each_episodes_final_dict_observation():
    config = EnvConfig(id="space_envs:DictContext", num_envs=2)
    envs = make_vector_env(config, 2)
    preprocessor = ObservationPreprocessor(envs.single_observation_space)
    policy = make_policy(preprocessor.layout, envs.single_action_space, PolicyConfig())
    batch = Collector(envs, policy, preprocessor, "steps", 4 * EPISODE_STEPS, seed=0).collect()
    envs.close()
    assert batch.truncated[EPISODE_STEPS - 1].all()
    # within an episode s_{t+1} is the next step's s_t; at its end, the episode's final observation
    # (a fresh random draw), not the next episode's first, which the vector env returned in its place
    assert torch.equal(batch.next_obs[: EPISODE_STEPS - 1], batch.obs[1:EPISODE_STEPS])
    assert not torch.equal(batch.next_obs[EPISODE_STEPS - 1], batch.obs[EPISODE_STEPS])


def test_policy_files_describe_every_space_they_may_hold(tmp_path):
    spaces = [
        gym.spaces.Discrete(3, start=1),
        gym.spaces.Box(-1.0, 2.0, (3,), dtype=np.float32),
        IMAGE,
        gym.spaces.Box(0, 1, (10, 10, 4), dtype=bool),
        gym.spaces.Box(0, np.iinfo(np.int32).max, (2,), dtype=np.int32),  # bounds a float32 cannot hold
        gym.spaces.MultiDiscrete([2, 3], start=[0, 1]),
        gym.spaces.MultiBinary(4),
        gym.spaces.MultiBinary([2, 3]),
        gym.spaces.Tuple([gym.spaces.Discrete(2), MINIGRID_LIKE]),
    ]
    torch.save([describe_space(space) for space in spaces], tmp_path / "spaces.pt")
    descriptions = torch.load(tmp_path / "spaces.pt", weights_only=True)  # plain values and tensors only
    for space, description in zip(spaces, descriptions, strict=True):
        rebuilt = rebuild_space(description)
        assert rebuilt == space and rebuilt.dtype == space.dtype


def test_an_image_fed_flat_is_scaled_however_it_is_stored():
    """policy.encoder=mlp: images reach the MLP in [0, 1], stored as bytes or (beside a float
    entry) as float32."""
    space = gym.spaces.Dict(
        {"image": gym.spaces.Box(0, 255, (4, 4, 3), dtype=np.uint8), "speed": gym.spaces.Box(-1.0, 1.0, (2,))}
    )
    preprocessor = ObservationPreprocessor(space)
    assert preprocessor.dtype == np.float32
    encoder = make_policy(preprocessor.layout, gym.spaces.Discrete(2), PolicyConfig(encoder="mlp")).encoder
    obs = {
        "image": np.full((1, 4, 4, 3), 255, dtype=np.uint8),
        "speed": np.array([[0.5, -0.5]], dtype=np.float32),
    }
    expected = torch.tensor([[1.0] * 48 + [0.5, -0.5]])  # the pixels at 1, the speed as it is
    for layer in encoder.layers:
        expected = torch.tanh(layer(expected))
    torch.testing.assert_close(encoder(preprocessor(obs)), expected)
    assert encoder.state_dict().keys() == {
        "layers.0.weight",
        "layers.0.bias",
        "layers.1.weight",
        "layers.1.bias",
    }


def test_a_policy_reading_bytes_does_not_fit_a_float_image_of_the_same_shape():
    floats = gym.spaces.Box(0.0, 1.0, (84, 84, 4), dtype=np.float32)
    assert not same_kind_of_space(IMAGE, floats)
    assert same_kind_of_space(IMAGE, gym.spaces.Box(0, 200, (84, 84, 4), dtype=np.uint8))
