"""Typed configuration: the schema Hydra composes into, and the range checks it cannot express.

OmegaConf enforces the types and rejects unknown keys while Hydra composes the config.
`validate` then checks what types cannot say (ranges, choices) and reports the first
violation as one line naming the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


class ConfigError(ValueError):
    """A configuration value outside what pgrun accepts; the message is one line."""


def _checked(default: Any = MISSING, **rules: Any) -> Any:
    """A dataclass field whose value `validate` checks against `rules`.

    Rules: ge, gt, le, lt (bounds), choices (allowed values). None values always pass,
    so an Optional field means "off" when set to null.
    """
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=rules)
    return field(default=default, metadata=rules)


@dataclass
class EnvConfig:
    id: str = MISSING
    """gymnasium id ("CartPole-v1"), "module:Id-v0" (import module, then make Id-v0),
    or "module:ClassName" (a gymnasium.Env subclass, registered on the fly)"""
    num_envs: int = _checked(4, ge=1)
    """parallel copies stepped by the collector's vector env"""
    vectorization: str = _checked("sync", choices=("sync", "async"))
    """gymnasium vector env: sync steps copies in this process, async in subprocesses"""
    max_episode_steps: int | None = _checked(None, ge=1)
    """override the env's time limit (truncation); null keeps the registered one"""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """keyword arguments passed to gymnasium.make"""
    normalize_obs: bool = False
    """standardize observations by running mean and std (saved with the policy)"""


@dataclass
class AlgoConfig:
    """The plain policy gradient (vpg, rtg): an estimator, an update rule and their settings."""

    estimator: str = _checked(MISSING, choices=("total_return", "reward_to_go", "gae"))
    """per-step weight Phi_t: total_return R(tau), reward_to_go, or gae (advantage with a
    learned value baseline; needs an actor-critic config such as algo=baseline)"""
    update: str = "policy_gradient"
    """update rule turning batch and weights into one parameter update"""
    gamma: float = _checked(0.99, ge=0.0, le=1.0)
    """discount in the returns"""
    normalize_weights: bool = True
    """shift and scale the weights of a batch to zero mean and unit std"""
    lr: float = _checked(1e-2, gt=0.0)
    """Adam learning rate"""
    lr_schedule: str = _checked("constant", choices=("constant", "linear"))
    """linear anneals the learning rate to 0 at total_steps"""
    adam_eps: float = _checked(1e-8, gt=0.0)
    max_grad_norm: float | None = _checked(None, gt=0.0)
    """clip the global gradient norm before the step; null: no clipping"""
    ent_coef: float = _checked(0.0, ge=0.0)
    """entropy bonus coefficient in the loss"""
    batch_unit: str = _checked("steps", choices=("steps", "episodes"))
    """steps: batch_size env steps (episodes cut at the batch edge);
    episodes: batch_size complete episodes"""
    batch_size: int = _checked(5000, ge=1)
    minibatch_size: int | None = _checked(None, ge=1)
    """process the batch in chunks of this many steps to bound memory; gradients are
    accumulated and the optimizer still steps once per batch; null: one chunk"""

    def inconsistency(self) -> tuple[str, str] | None:
        """(field, why) if the fields do not fit together, else None."""
        if self.estimator == "gae" and not isinstance(self, ActorCriticConfig):
            return "estimator", "must not be gae without a value function: choose an algo with one (baseline)"
        return None


@dataclass
class ValueConfig:
    """The value network V_phi(s) used as a baseline, fitted by MSE to the return targets."""

    hidden_sizes: list[int] = _checked([64, 64], ge=1)
    lr: float = _checked(1e-3, gt=0.0)
    """its own Adam learning rate"""
    iters: int = _checked(80, ge=1)
    """passes over the batch per iteration"""
    minibatch_size: int | None = _checked(None, ge=1)
    """steps per gradient step within a pass (shuffled); null: the whole batch"""
    max_grad_norm: float | None = _checked(None, gt=0.0)
    clip_range: float | None = _checked(None, gt=0.0)
    """value clipping: the loss is max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2); null: plain MSE"""


@dataclass
class ActorCriticConfig(AlgoConfig):
    """A policy gradient whose weights are advantages against a learned V (algo=baseline)."""

    gae_lambda: float = _checked(1.0, ge=0.0, le=1.0)
    """GAE lambda: 1 gives reward-to-go minus V(s_t), 0 the one-step TD residual"""
    value: ValueConfig = field(default_factory=ValueConfig)


@dataclass
class PPOConfig(ActorCriticConfig):
    """Proximal policy optimization (algo=ppo): several epochs on a clipped or KL-penalized surrogate."""

    variant: str = _checked("clip", choices=("clip", "penalty"))
    """clip: min(r A, clip(r, 1 - eps, 1 + eps) A); penalty: r A - beta KL(pi_old || pi), beta adapted"""
    clip: float = _checked(0.2, gt=0.0)
    """surrogate clip range epsilon"""
    epochs: int = _checked(10, ge=1)
    """passes over the batch, each in shuffled minibatches of minibatch_size"""
    target_kl: float | None = _checked(0.015, gt=0.0)
    """clip: stop the batch's epochs once approx KL exceeds 1.5 * target_kl (null: never);
    penalty: the KL that beta is adapted towards"""
    kl_coef: float = _checked(1.0, gt=0.0)
    """penalty: initial beta; doubled when KL > 1.5 target_kl, halved when KL < target_kl / 1.5"""

    def inconsistency(self) -> tuple[str, str] | None:
        if self.variant == "penalty" and self.target_kl is None:
            return "target_kl", "must be set: the penalty variant adapts its coefficient towards it"
        return super().inconsistency()


@dataclass
class TrustRegionConfig(ActorCriticConfig):
    """Natural gradient step of KL size max_kl (algo=npg), with a line search (algo=trpo)."""

    max_kl: float = _checked(0.01, gt=0.0)
    """delta: the step is scaled so that its quadratic KL estimate is delta"""
    line_search: bool = True
    """backtrack until the measured mean KL <= delta and the surrogate improves (TRPO)"""
    cg_iters: int = _checked(10, ge=1)
    """conjugate gradient iterations for x = F^-1 g"""
    cg_damping: float = _checked(0.1, ge=0.0)
    """added to the Fisher matrix: F + damping I"""
    backtrack_iters: int = _checked(10, ge=1)
    backtrack_coef: float = _checked(0.8, gt=0.0, lt=1.0)


@dataclass
class ImportanceConfig(AlgoConfig):
    """Policy gradient on the last reuse_batches batches, importance-weighted (algo=is)."""

    reuse_batches: int = _checked(4, ge=1)
    """batches kept and reused, the newest included"""
    is_weights: str = _checked("per_decision", choices=("per_decision", "per_step"))
    """per_decision: reward r_t weighted by prod_{k<=t} rho_k (unbiased); per_step: Phi_t
    weighted by the step's own ratio rho_t"""
    weight_clip: list[float] | None = _checked(None, ge=0.0)
    """[low, high]: clamp every ratio rho_k = pi(a_k|s_k) / pi_old(a_k|s_k) to this range"""
    weight_max: float | None = _checked(None, gt=0.0)
    """truncate the importance weights at this value"""
    self_normalize: bool = False
    """divide the importance weights by their mean over the batch"""

    def inconsistency(self) -> tuple[str, str] | None:
        if self.estimator != "reward_to_go":
            return (
                "estimator",
                "must be reward_to_go: importance sampling weights the rewards of a reward-to-go",
            )
        if self.weight_clip is not None and not (
            len(self.weight_clip) == 2 and self.weight_clip[0] <= self.weight_clip[1]
        ):
            return "weight_clip", "must be [low, high] with 0 <= low <= high"
        return super().inconsistency()


@dataclass
class PolicyConfig:
    hidden_sizes: list[int] = _checked([64, 64], ge=1)
    activation: str = _checked("tanh", choices=("tanh", "relu", "elu", "gelu", "silu"))
    init: str = _checked("orthogonal", choices=("orthogonal", "default"))
    """orthogonal: gain sqrt(2) hidden layers, 0.01 output layer; default: torch's"""
    log_std_init: float = -0.5
    """initial log standard deviation of the Gaussian policy (Box actions)"""


@dataclass
class EvalConfig:
    every: int = _checked(10_000, ge=1)
    """evaluate every this many env steps (and once at the end)"""
    episodes: int = _checked(10, ge=1)
    """episodes per evaluation, run in parallel on their own env copies"""
    deterministic: bool = True
    """act with the distribution's mode (argmax / mean) instead of sampling"""


@dataclass
class LogConfig:
    console: bool = True
    """one line per iteration on stderr, under a progress bar"""
    tensorboard: bool = True
    save_policy: bool = True
    """write policy.pt (weights + config) to the run dir at the end"""


@dataclass
class Config:
    algo: AlgoConfig = MISSING
    env: EnvConfig = MISSING
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    log: LogConfig = field(default_factory=LogConfig)
    seed: int = _checked(0, ge=0)
    """seeds torch, numpy, python and the envs"""
    total_steps: int = _checked(300_000, ge=1)
    """env steps to train for"""
    target_return: float | None = None
    """record the env steps and seconds at which an evaluation first reaches this"""
    stop_at_target: bool = False
    """stop training once target_return is reached"""
    objective: str = _checked("final", choices=("final", "best"))
    """what a run returns to a sweeper (Optuna maximizes it): its final or best eval return"""
    device: str = "cpu"
    torch_threads: int = _checked(1, ge=1)
    """intra-op threads; 1 is fastest for small MLPs and keeps parallel jobs apart"""


def slug(text: str) -> str:
    """A file-name-safe form of `text` ("my_pkg.envs:Corridor-v0" -> "my_pkg.envs_Corridor-v0")."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def register_schemas() -> None:
    """Make the schema and the ${pgrun_slug:...} resolver available to the YAML configs."""
    store = ConfigStore.instance()
    store.store(name="pgrun_schema", node=Config)
    store.store(group="schema/algo", name="policy_gradient", node=AlgoConfig)
    store.store(group="schema/algo", name="actor_critic", node=ActorCriticConfig)
    store.store(group="schema/algo", name="importance", node=ImportanceConfig)
    store.store(group="schema/algo", name="ppo", node=PPOConfig)
    store.store(group="schema/algo", name="trust_region", node=TrustRegionConfig)
    if not OmegaConf.has_resolver("pgrun_slug"):
        OmegaConf.register_new_resolver("pgrun_slug", slug)


def _violation(rules: dict[str, Any], value: Any) -> str | None:
    if "choices" in rules and value not in rules["choices"]:
        return "must be one of " + ", ".join(map(str, rules["choices"]))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if rules.get("gt") is not None and not value > rules["gt"]:
        return f"must be > {rules['gt']}"
    if rules.get("ge") is not None and not value >= rules["ge"]:
        return f"must be >= {rules['ge']}"
    if rules.get("le") is not None and not value <= rules["le"]:
        return f"must be <= {rules['le']}"
    if rules.get("lt") is not None and not value < rules["lt"]:
        return f"must be < {rules['lt']}"
    return None


def validate(node: Any, prefix: str = "") -> None:
    """Check every `_checked` field of a dataclass tree; raise ConfigError on the first violation."""
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            validate(value, prefix=f"{key}.")
            continue
        for item in value if isinstance(value, list) else [value]:
            if item is not None and (problem := _violation(dict(f.metadata), item)):
                raise ConfigError(f"{key}={value!r} is not allowed: {problem}")
    if hasattr(node, "inconsistency") and (found := node.inconsistency()):
        name, problem = found
        raise ConfigError(f"{prefix}{name}={getattr(node, name)!r} is not allowed: {problem}")


def unknown_key(node: DictConfig, prefix: str = "") -> str | None:
    """The first key whose dataclass schema lacks it (a key added with '+key=...')."""
    schema = OmegaConf.get_type(node)
    if not dataclasses.is_dataclass(schema):
        return None  # a free-form dict such as env.kwargs
    names = {f.name for f in dataclasses.fields(schema)}
    for key in node:
        if key not in names:
            return f"{prefix}{key}"
        child = node[key]
        if isinstance(child, DictConfig) and (found := unknown_key(child, f"{prefix}{key}.")):
            return found
    return None


def to_config(cfg: DictConfig) -> Config:
    """Turn a composed DictConfig into a validated `Config` instance."""
    extra = unknown_key(cfg)
    if extra:
        raise ConfigError(f"{extra} is not a known key of pgrun's config")
    try:
        config = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as error:  # e.g. a required value left missing
        message = str(error).splitlines()[0]
        raise ConfigError(f"{getattr(error, 'full_key', '') or 'config'}: {message}") from error
    if not isinstance(config, Config):
        raise ConfigError("config: the composed config is not a pgrun config")
    validate(config)
    return config


def as_plain_dict(config: Config) -> dict[str, Any]:
    """The config as nested dicts of plain values (for checkpoints and hparams)."""
    return dataclasses.asdict(config)
