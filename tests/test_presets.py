"""Every tuned preset (configs/tuned/<algo>_<env>.yaml) is applied when its algo and env are chosen."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf
from tests_support import pgrun, shipped_config

from pgrun.config import as_plain_dict
from pgrun.config.presets import preset_keys, preset_line

CONFIGS = Path(__file__).parent.parent / "configs"
ALGOS = {path.stem for path in (CONFIGS / "algo").glob("*.yaml")}
ENVS = {path.stem for path in (CONFIGS / "env").glob("*.yaml")}


def algo_and_env(preset: Path) -> tuple[str, str]:
    [pair] = [
        (algo, preset.stem[len(algo) + 1 :])
        for algo in ALGOS
        if preset.stem[len(algo) + 1 :] in ENVS and preset.stem.startswith(f"{algo}_")
    ]
    return pair


def leaves(tree: dict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= leaves(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def preset_values(path: Path) -> dict[str, object]:
    """The preset's keys, those of the files it includes first (its defaults list)."""
    tree = OmegaConf.to_container(OmegaConf.load(path))
    values = {}
    for included in tree.pop("defaults", []):
        values |= preset_values(path.parent / f"{included}.yaml")
    return values | leaves(tree)


def lookup(tree: dict, dotted: str) -> object:
    for key in dotted.split("."):
        tree = tree[key]
    return tree


@pytest.mark.parametrize("preset", sorted((CONFIGS / "tuned").glob("*.yaml")), ids=lambda path: path.stem)
def test_a_tuned_preset_applies_to_its_algo_and_env(preset):
    algo, env = algo_and_env(preset)
    # a group for any id of a family (env=atari) needs one
    any_id = OmegaConf.is_missing(OmegaConf.load(CONFIGS / "env" / f"{env}.yaml"), "id")
    some_id = ["env.id=ALE/Seaquest-v5"] if any_id else []
    composed = as_plain_dict(shipped_config(f"algo={algo}", f"env={env}", *some_id))
    values = preset_values(preset)
    assert values
    for key, value in values.items():
        assert lookup(composed, key) == value, key
    # and only there: the same algo on another env keeps the algorithm's defaults
    other_env = "cartpole" if env != "cartpole" else "acrobot"
    other = as_plain_dict(shipped_config(f"algo={algo}", f"env={other_env}"))
    assert any(lookup(other, key) != value for key, value in values.items() if not key.startswith("env."))


@pytest.mark.parametrize(
    ("overrides", "preset_applies"),
    [
        ([], True),
        (["env.id=CartPole-v1"], True),
        (["env.id=Acrobot-v1"], False),
        (["env=acrobot"], False),
        (["env.id=Acrobot-v1", "tuned=ppo_cartpole"], True),
    ],
    ids=["env group", "its own id", "another id", "another group", "chosen by hand"],
)
def test_a_preset_tuned_for_an_env_is_left_out_when_env_id_names_another(tmp_path, overrides, preset_applies):
    """ppo_cartpole is tuned for CartPole-v1: `pgrun algo=ppo env.id=Acrobot-v1` (the default
    env group with another id) gets pgrun's ppo defaults, not CartPole's preset."""
    result = pgrun("algo=ppo", *overrides, "--cfg", "job", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    config = OmegaConf.create(result.stdout)
    preset = OmegaConf.load(CONFIGS / "tuned" / "ppo_cartpole.yaml")
    applied = config.algo.batch_size == preset.algo.batch_size and config.env.num_envs == preset.env.num_envs
    assert applied == preset_applies


@pytest.mark.parametrize("preset", sorted((CONFIGS / "tuned").glob("*.yaml")), ids=lambda path: path.stem)
def test_the_console_names_every_key_a_preset_sets(preset):
    """The start-up line `tuned preset ... applied (N keys: ...)` lists the keys of the file
    and of the files its defaults list includes (ppo_walker2d: the shared MuJoCo file's too)."""
    assert sorted(preset_keys(CONFIGS, preset.stem)) == sorted(preset_values(preset))
    line = preset_line(CONFIGS, preset.stem)
    assert f"tuned/{preset.stem}.yaml applied ({len(preset_values(preset))} keys: " in line


def test_no_preset_line_for_a_pair_without_a_preset():
    assert preset_line(CONFIGS, "vpg_cartpole") is None and preset_line(CONFIGS, None) is None


COMPARISONS = [
    path
    for path in sorted((CONFIGS / "experiment").glob("*.yaml"))
    if "algo" in OmegaConf.load(path).get("hydra", {}).get("sweeper", {}).get("params", {})
]


@pytest.mark.parametrize("experiment", COMPARISONS, ids=[path.stem for path in COMPARISONS])
def test_a_comparison_runs_every_algorithm_under_one_preset_policy(experiment):
    """A sweep over algorithms must not give some of them a tuned preset and others none."""
    from pgrun.api import compose_config

    params = OmegaConf.load(experiment).hydra.sweeper.params
    applied = {}
    for algo in str(params.algo).split(","):
        _, hydra_config = compose_config([f"experiment={experiment.stem}", f"algo={algo}"])
        tuned = hydra_config.runtime.choices.get("tuned")
        applied[algo] = tuned if tuned and (CONFIGS / "tuned" / f"{tuned}.yaml").is_file() else None
    assert len(set(applied.values())) == 1 or None not in applied.values(), applied
    assert len(applied) >= 2
