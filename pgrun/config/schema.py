"""The schema of pgrun's config: typed dataclasses that Hydra composes the YAML files into.

Each field's type is enforced by OmegaConf while Hydra composes; `checked` attaches the
ranges and choices that types cannot say, which pgrun.config.validation checks. Every
algorithm extends AlgoConfig in its own module (pgrun.algorithms.*) with exactly the keys
it uses. The env group's schema is in pgrun.config.env_schema, the field helpers in
pgrun.config.checks. Imports neither torch nor any other part of pgrun.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from omegaconf import MISSING

# (re-exported: pgrun.config's names of the schema, ConfigError and checked included, come from here)
from pgrun.config.checks import ConfigError as ConfigError
from pgrun.config.checks import checked
from pgrun.config.env_schema import AtariConfig as AtariConfig
from pgrun.config.env_schema import EnvConfig
from pgrun.config.env_schema import is_atari_id as is_atari_id


@dataclass
class OptimizerConfig:
    """The optimizer of an update rule's gradient steps, and what is done to each step."""

    name: str = checked("adam", choices=("adam", "rmsprop", "rmsprop_tf", "sgd"))
    """adam, rmsprop (smoothing constant 0.99; torch's form), rmsprop_tf (TensorFlow's form:
    eps inside the root, the squared average starting at 1; for A2C on Atari) or plain sgd"""
    lr: float = checked(1e-3, gt=0.0)
    """learning rate"""
    lr_schedule: str = checked("constant", choices=("constant", "linear"))
    """linear anneals the learning rate to 0 at total_steps"""
    eps: float = checked(1e-8, gt=0.0)
    """epsilon in Adam's and RMSprop's denominators (unused by sgd)"""
    max_grad_norm: float | None = checked(None, gt=0.0)
    """clip the global gradient norm before each step; null: no clipping"""

    def ignored_keys(self) -> dict[str, str]:
        if self.name == "sgd":
            return {"eps": "with {prefix}name=sgd: it is Adam's and RMSprop's epsilon"}
        return {}


@dataclass
class ValueNetworkConfig:
    """The value network V_phi(s) of an actor-critic trained in the policy's own loss (a2c)."""

    hidden_sizes: list[int] = checked([64, 64], ge=1)


@dataclass
class ValueConfig(ValueNetworkConfig):
    """V_phi(s) fitted on its own after each policy update, by MSE to the estimator's value targets."""

    lr: float = checked(1e-3, gt=0.0)
    """its own Adam learning rate"""
    lr_schedule: str | None = checked(None, choices=("constant", "linear"))
    """its learning rate's schedule; null: the policy's (algo.optim.lr_schedule; constant
    for trpo and npg, which have none), resolved when the config is checked"""
    iters: int = checked(80, ge=1)
    """passes over the batch per iteration"""
    minibatch_size: int | None = checked(None, ge=1)
    """steps per gradient step within a pass (shuffled); null: the whole batch"""
    max_grad_norm: float | None = checked(None, gt=0.0)
    clip_range: float | None = checked(None, gt=0.0)
    """value clipping: the loss is max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2); null: plain MSE"""


@dataclass
class AlgoConfig:
    """What every algorithm has: an estimator of the per-step coefficients Phi_t, and its batches.

    Each algorithm extends this with exactly the keys it uses (pgrun/algorithms/*.py); a key
    that the chosen algorithm lacks is an error.
    """

    estimator: str = MISSING
    """the estimator of Phi_t (pgrun.estimation.estimators.ESTIMATORS); each algorithm lists
    those it accepts"""
    gamma: float = checked(0.99, ge=0.0, le=1.0)
    """discount in the returns"""
    normalize_advantages: bool = True
    """shift and scale Phi_t over the batch to zero mean and unit std"""
    batch_unit: str = checked("steps", choices=("steps", "episodes"))
    """steps: batch_size env steps (episodes cut at the batch edge);
    episodes: batch_size complete episodes"""
    batch_size: int = checked(5000, ge=1)

    LOG_STD_INIT: ClassVar[float] = -0.5
    """the initial log-std of a Gaussian policy when policy.log_std_init is null: Spinning Up's
    -0.5 (vpg, baseline, trpo), unless the algorithm's reference implementation has another"""
    SECOND_DERIVATIVES: ClassVar[bool] = False
    """its step differentiates the policy twice (a Fisher-vector product): torch.compile'd
    networks cannot take it"""

    def inconsistency(self) -> tuple[str, str] | None:
        """(field, why) if the fields do not fit together, else None."""
        return None

    def ignored_keys(self) -> dict[str, str]:
        """{key: why} for the keys (dotted below algo) that do nothing under the variant the
        other values choose: set to anything but their default, they are refused."""
        return {}

    def resolve_defaults(self) -> None:
        """Give the keys whose null default means "as another key" their value: a fitted V's
        value.lr_schedule follows the policy's optim.lr_schedule (constant without one)."""
        value, optim = getattr(self, "value", None), getattr(self, "optim", None)
        if getattr(value, "lr_schedule", "") is None:
            value.lr_schedule = optim.lr_schedule if optim is not None else "constant"


@dataclass
class PolicyConfig:
    hidden_sizes: list[int] = checked([64, 64], ge=1)
    activation: str = checked("tanh", choices=("tanh", "relu", "elu", "gelu", "silu"))
    init: str = checked("orthogonal", choices=("orthogonal", "default"))
    """orthogonal: gain sqrt(2) hidden layers, 0.01 output layer; default: torch's"""
    encoder: str = checked("auto", choices=("auto", "mlp", "nature_cnn", "small_cnn", "multi_input"))
    """what reads the observations (pgrun.networks.encoders): auto picks mlp for vectors, a CNN
    for an image (nature_cnn if both sides >= 36, else small_cnn) and multi_input for Dict or
    Tuple observations with an image; mlp feeds images flat (scaled to [0, 1]) only when named.
    hidden_sizes are the layers after mlp and multi_input; a CNN of one image has none"""
    log_std_init: float | None = -0.5
    """initial log standard deviation of the Gaussian policy (Box actions); null (configs/
    config.yaml's default): the algorithm's reference value (AlgoConfig.LOG_STD_INIT),
    resolved when the config is checked"""
    clip_actions: bool = True
    """Box actions: clip the sampled action to the bounds before the env gets it (the update
    still uses the log-prob of the unclipped sample); false: the env gets the raw sample"""


@dataclass
class EvalConfig:
    every: int = checked(10_000, ge=1)
    """evaluate every this many env steps (and once at the end)"""
    episodes: int = checked(10, ge=1)
    """episodes per evaluation, run in parallel on their own env copies"""
    deterministic: bool = True
    """act with the distribution's mode (argmax / mean) instead of sampling"""
    starts: str = checked("fresh", choices=("fresh", "fixed"))
    """fresh: each evaluation resets its copies with a seed of its own (new start states and
    env randomness, deterministic from the run's seed); fixed: every evaluation with the
    same seed (the same start states each time)"""
    video: bool = False
    """record one evaluation episode (an env copy of its own, rendered headless) as an MP4
    in <run dir>/videos/ and as a clip in TensorBoard; needs moviepy (pgrun[video])"""
    video_every: int = checked(100_000, ge=1)
    """with video: record at the first evaluation at or after every this many env steps,
    and at the last one"""


@dataclass
class LogConfig:
    every: int = checked(1000, ge=1)
    """log an iteration once this many env steps have passed since the last logged one
    (every evaluation is logged too); episodes of the iterations between are included"""
    info_keys: list[str] = field(default_factory=list)
    """per-episode values the env reports in its info at an episode's end, logged as means
    under env/<key> (is_success as env/success_rate)"""
    console: bool = True
    """one line per logged iteration on stderr, under a progress bar"""
    tensorboard: bool = True
    save_policy: bool = True
    """write policy.pt (parameters + config) to the run dir at the end"""
    wandb: bool = False
    """also send the scalars, the config and videos to Weights & Biases (extra pgrun[wandb]);
    with WANDB_MODE=offline they stay in <run dir>/wandb for `wandb sync`"""
    wandb_project: str = "pgrun"
    wandb_entity: str | None = None
    """W&B user or team (None: your default entity)"""
    wandb_group: str | None = None
    """W&B group (None: a sweep's jobs are grouped by their sweep dir, a single run has none)"""


@dataclass
class CheckpointConfig:
    every: int = checked(50_000, ge=1)
    """write a checkpoint (checkpoints/step_<env steps>.pt) every this many env steps, and at the end"""
    keep: int = checked(3, ge=1)
    """how many of the newest checkpoints to keep"""


@dataclass
class Config:
    algo: AlgoConfig = MISSING
    env: EnvConfig = MISSING
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    log: LogConfig = field(default_factory=LogConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    seed: int = checked(0, ge=0, le=2**32 - 1)
    """seeds torch, numpy, python and the envs"""
    total_steps: int = checked(300_000, ge=1)
    """env steps to train for"""
    schedule_steps: int | None = checked(None, ge=1)
    """env steps over which the learning rate's schedule runs (linear: 0 there, and 0 past it);
    null: total_steps. A resumed run keeps the horizon it started with, so a larger
    total_steps extends the run without changing its learning rates; set this on resume to
    stretch the schedule instead"""
    target_return: float | None = None
    """record the env steps and seconds at which an evaluation first reaches this"""
    stop_at_target: bool = False
    """stop training once target_return is reached"""
    objective: str = checked("final", choices=("final", "best"))
    """what a run returns to a sweeper (Optuna maximizes it): its final or best eval return"""
    device: str = checked(
        "cpu", pattern=r"auto|cpu|mps|cuda(:\d+)?", described="auto, cpu, cuda, cuda:N or mps"
    )
    """where the networks learn and act: auto (a CUDA GPU if torch sees one, else the cpu),
    cpu, cuda, cuda:N or mps. The envs run on the cpu; each batch moves to the device once"""
    torch_threads: int = checked(1, ge=1)
    """intra-op threads; 1 is fastest for small MLPs and keeps parallel jobs apart"""
    compile: bool = False
    """torch.compile the networks (each encoder, and a value network of its own): the update's
    forward and backward passes and the collection's run as compiled kernels, with CUDA graphs
    on a GPU. The same math up to float rounding; costs compile time at the start and at each
    new batch shape (benchmarks/speed.py measures both)"""

    def inconsistency(self) -> tuple[str, str] | None:
        """(key, why) if the batch and the env copies do not fit the budget, else None."""
        algo, num_envs = self.algo, self.env.num_envs
        if num_envs > algo.batch_size:
            return "env.num_envs", (
                f"must be at most algo.batch_size={algo.batch_size} ({algo.batch_unit} per batch): "
                "each env copy contributes at least one"
            )
        if self.compile and algo.SECOND_DERIVATIVES:
            return "compile", (
                "the trust-region step takes Fisher-vector products (second derivatives of the policy), "
                "which torch.compile'd networks do not give; use compile=false"
            )
        if algo.batch_unit == "steps":
            batch_steps = -(-algo.batch_size // num_envs) * num_envs
            if batch_steps > self.total_steps:
                return "algo.batch_size", (
                    f"must be at most total_steps={self.total_steps} (one batch is {batch_steps} env steps "
                    f"with env.num_envs={num_envs})"
                )
        return None
