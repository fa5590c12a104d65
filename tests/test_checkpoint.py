"""policy.pt: written atomically, rebuilt from what it stores, and never executed."""

import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from pgrun.collection.normalization import ObservationPreprocessor
from pgrun.config import Config, EnvConfig, PolicyConfig, as_plain_dict
from pgrun.networks.policy import make_policy
from pgrun.training.policy_file import PolicyFileError, load_policy, save_policy


def saved_policy(tmp_path, env_id: str, obs_space, action_space, normalize: bool):
    torch.manual_seed(0)
    encoder = ObservationPreprocessor(obs_space, normalize=normalize)
    if normalize:
        encoder.update_and_encode(np.random.default_rng(0).normal(3.0, 2.0, size=(50, *obs_space.shape)))
    architecture = PolicyConfig(hidden_sizes=[8])
    policy = make_policy(encoder.dim, action_space, architecture)
    config = as_plain_dict(Config(env=EnvConfig(id=env_id), policy=architecture))
    path = tmp_path / "policy.pt"
    save_policy(path, policy, config, encoder, action_space)
    return path, policy, encoder


SPACES = {
    "discrete actions": (gym.spaces.Box(-1.0, 1.0, shape=(4,)), gym.spaces.Discrete(3, start=1), False),
    "box actions, normalized obs": (
        gym.spaces.Box(-5.0, 5.0, shape=(2, 3)),
        gym.spaces.Box(-2.0, 2.0, (2,)),
        True,
    ),
    "discrete obs": (gym.spaces.Discrete(5), gym.spaces.Discrete(2), False),
}


@pytest.mark.parametrize(("obs_space", "action_space", "normalize"), SPACES.values(), ids=SPACES)
def test_load_policy_rebuilds_the_policy_without_making_or_importing_the_env(
    tmp_path, obs_space, action_space, normalize
):
    # the file names a module that does not exist: loading must not need it
    path, policy, encoder = saved_policy(
        tmp_path, "no_such_module_xyz:Env", obs_space, action_space, normalize
    )
    loaded, loaded_encoder, config = load_policy(path)
    assert "no_such_module_xyz" not in sys.modules
    assert config["env"]["id"] == "no_such_module_xyz:Env"
    obs = np.stack([obs_space.sample() for _ in range(6)])
    torch.testing.assert_close(loaded_encoder(obs), encoder(obs))
    features = encoder(obs)
    with torch.no_grad():
        torch.testing.assert_close(loaded.distribution_params(features), policy.distribution_params(features))
        np.testing.assert_array_equal(
            loaded.env_action(loaded.mode(features)), policy.env_action(policy.mode(features))
        )


class Payload:
    """A pickle that would create a file when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_crafted_pickle_is_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "policy.pt"
    torch.save({"state_dict": Payload(marker)}, path)
    with pytest.raises(PolicyFileError) as error:
        load_policy(path)
    assert not marker.exists()
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_truncated_foreign_and_missing_files_give_one_line(tmp_path):
    path, _, _ = saved_policy(tmp_path, "CartPole-v1", *SPACES["discrete actions"])
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:200])
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    for bad, words in [(truncated, "not a readable"), (foreign, "missing"), (text, "not a readable"),
                       (tmp_path / "absent.pt", "no such policy file")]:  # fmt: skip
        with pytest.raises(PolicyFileError) as error:
            load_policy(bad)
        message = str(error.value)
        assert message.startswith(str(bad)) and words in message and "\n" not in message, message
