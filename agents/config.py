"""Training configuration, declared once.

:class:`TrainConfig` is a :class:`~noisy_expert_gym.declarations.Declared` model: its
field types and constraints are the validation (every problem in one
:class:`~noisy_expert_gym.declarations.ConfigError`, unknown options with a
did-you-mean hint), and ``neg train``'s options are generated from the same fields
(:mod:`agents.cli`). :attr:`TrainConfig.NOT_IDENTITY` is the one list of fields
that do not change what a run learns. ``algo`` and ``algo_params`` are checked against the
algorithm registry's declarations (:mod:`agents.registry`, filled when ``import agents``
imports the algorithms), which imports nothing above it.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from agents.registry import ALGORITHMS, check_params, plugin_digest
from noisy_expert_gym.declarations import (
    NOT_BOOL,
    Declared,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    UnitInterval,
)


def _known_preset(preset: str) -> str:
    """The policy registry's check (it imports torch: only when a configuration is validated)."""
    from agents.policies import check_preset

    return check_preset(preset)


#: A student's name, checked against the policy registry; a type, so that the spec and board
#: `train` tables (built from these fields' types) check it too.
Preset = Annotated[str, AfterValidator(_known_preset)]


class TrainConfig(Declared):
    """Everything that defines a training run (with ``seed``, its identity)."""

    algo: str = "nail-f"
    """Algorithm name from the registry (`neg train --list` shows them), or your own: `path/to/file.py:Name` or `module:Name` (README: "Write your own algorithm")."""
    env_id: str = "NoisyModAdd-v0"
    """A registered env id with an expert oracle."""
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of the problem (eta, m, law, ...), as for gym.make."""
    algo_params: dict[str, Any] = Field(default_factory=dict)
    """Algorithm-specific hyperparameters (beta, tau, lam, ...); see each algorithm's defaults."""
    budget_trajectories: PositiveInt = 100_000
    """Expert-trajectory budget, spent when the expert produces a trajectory: an online update over k student rollouts spends k; BC collects its N-rollout dataset as its first pass reads it."""
    budget_queries: PositiveInt | None = None
    """Optional cap on expert prefix-queries (training stops at whichever budget runs out first)."""
    seed: int = 0
    """Seeds the model init, prompts, rollouts and expert sampling."""
    device: str = "auto"
    """`auto` picks CUDA, then MPS, then CPU."""
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """`auto` (bf16 where supported), `bf16` or `fp32`."""
    compile: Literal["auto", "on", "off"] = "auto"
    """torch.compile: `auto` (on CUDA only), `on`, `off`."""
    preset: Preset = "cpu-rope"
    """Policy preset: `paper` (1 layer, 8 heads, width 512), `cpu`, `cpu-rope`, `tiny`, or `hf:<name or path>` (an HF causal-LM student)."""
    model: dict[str, Any] = Field(default_factory=dict)
    """Overrides of the preset's fields (agents.policy.PolicyConfig: n_layer, n_head, n_embd, dropout, bias, pos, tie_embeddings; an HF student: lora, ...)."""
    batch_size: PositiveInt = 256
    """Trajectories (prompts) per update."""
    lr: PositiveFloat = 3e-3
    """Peak AdamW learning rate."""
    weight_decay: NonNegativeFloat = 0.0
    """AdamW weight decay."""
    warmup_updates: NonNegativeInt = 20
    """Linear warm-up length in updates."""
    schedule: Literal["constant", "cosine"] = "constant"
    """Learning-rate schedule after warm-up: `constant` or `cosine` (down to min_lr_ratio x lr at the end of the budget)."""
    min_lr_ratio: UnitInterval = 0.1
    """Floor of the cosine schedule as a fraction of the peak lr (0: decay to zero)."""
    grad_accum: PositiveInt = 1
    """Micro-batches per update: batch_size / grad_accum prompts each are collected, queried and back-propagated in turn, then one step on the token mean of the whole batch (bounds memory; batch_size must be a multiple)."""
    prompt_order: Literal["iid", "epoch"] = "iid"
    """Training prompts: `iid` (drawn uniformly with replacement) or `epoch` (a seeded permutation, every problem once per epoch; tasks with a finite problem list such as GSM-8K)."""
    grad_clip: NonNegativeFloat = 1.0
    """Global gradient-norm clip (0 disables)."""
    ema_decay: Annotated[float, Field(ge=0.0, lt=1.0), NOT_BOOL] = 0.0
    """Exponential moving average of the weights (0: off): after each step ema = d ema + (1 - d) weights with d = min(ema_decay, (1 + u) / (10 + u)) at update u; evaluation and the returned policy use the EMA weights, rollouts the trained ones."""
    eval_every: NonNegativeInt = 0
    """Evaluate every this many trajectories (0: 20 evaluations over the budget)."""
    eval_prompts: PositiveInt = 1024
    """Held-out prompts per evaluation (drawn from a fixed evaluation seed; with eval_mode `all`, if given, the number of problems)."""
    eval_mode: Literal["sample", "all"] = "sample"
    """Held-out prompts: `sample` (eval_prompts drawn with replacement from eval_seed) or `all` (every problem of the evaluation task once, in order, e.g. the 1,319 GSM-8K test problems)."""
    eval_sampled: bool = True
    """Also report the metrics of sampled (temperature 1) rollouts; False: greedy rollouts only."""
    eval_batch_size: PositiveInt = 1024
    """Prompts per forward pass of the evaluation (memory only; keep it small for large-vocabulary students)."""
    val_env_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Overrides of the evaluation env for the clean validation loss's text only, e.g. {"answer_format": "####", "strip_annotations": false}: the loss is the student's cross-entropy on that task's reference chains after the evaluation prompts (problems matched by their index in the data)."""
    eval_env_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Overrides of env_kwargs for evaluation, e.g. {"split": "test"} on GSM-8K (default: held-out prompts of the training problem)."""
    eval_seed: int = 123_456_789
    """Seed of the held-out evaluation prompts (never used for training)."""
    stop_at: float | None = None
    """Stop early once greedy_full_exact reaches this value at an evaluation."""
    checkpoint_dir: str | None = None
    """Directory for atomic checkpoints (needed for resume)."""
    checkpoint_every: NonNegativeInt = 0
    """Write a checkpoint every this many updates (0: at every evaluation)."""
    resume: bool = False
    """Continue from the last checkpoint in checkpoint_dir."""
    tensorboard_dir: str | None = None
    """Write TensorBoard scalars here (needs the `tensorboard` extra)."""
    progress: bool = True
    """Show a progress bar with live metrics."""
    data_dir: str | None = None
    """Cache directory for offline datasets (default ~/.cache/noisy_expert_gym)."""
    init_checkpoint: str | None = None
    """Warm start: initialise the student with the weights of this trainer checkpoint (a `last.pt` or its directory; same preset and model options)."""
    teacher_checkpoint: str | None = None
    """A trained student checkpoint that replaces the env's experts: the noisy expert is softmax(logits / teacher_t) of that policy, the clean expert its greedy decoding (agents.teachers.PolicyTeacher)."""
    teacher_t: PositiveFloat = 1.0
    """Temperature of the teacher_checkpoint teacher (the `temperature` noise law: 1 low, 4 high)."""
    expert_form: Literal["auto", "dense", "structured"] = "auto"
    """How the online methods read the expert's rows: `dense` (probs_along, (B, H, A)), `structured` (clean token and noise weight only, for a plain Expert with a mixture/absorbing law), `auto` (structured from 4096 actions on, e.g. an HF vocabulary)."""

    NOT_IDENTITY: ClassVar[frozenset[str]] = frozenset({
        "checkpoint_dir", "checkpoint_every", "resume", "progress", "tensorboard_dir", "data_dir", "device",
        "stop_at", "eval_batch_size"})
    """The fields that do not change a run's learning trajectory: where it writes and shows things, the
    device, the evaluation's chunking, and ``stop_at`` (which only cuts the curve short). Every other field is the run's identity
    (:meth:`identity`): a checkpoint resumes only under the same identity (so a run stopped by
    ``stop_at`` can be resumed without it, or on another device), and the scoreboards' run key is
    ``identity()`` + ``stop_at`` + the code version."""

    @field_validator("algo")
    @classmethod
    def _registered_algo(cls, v: str) -> str:
        if problems := check_params(v, {}):
            raise ValueError(problems[0])
        return v

    @field_validator("env_id")
    @classmethod
    def _registered_env(cls, v: str) -> str:
        from noisy_expert_gym.problems import family_of

        family_of(v)  # unknown ids raise with the valid ones and a suggestion
        return v

    @field_validator("algo_params")
    @classmethod
    def _algo_params(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "algo" in info.data and (problems := check_params(info.data["algo"], v)):
            raise ValueError("; ".join(problems))
        return v

    @field_validator("grad_accum")
    @classmethod
    def _divides_batch(cls, v: int, info: ValidationInfo) -> int:
        b = info.data.get("batch_size")
        if b is not None and b % v:
            raise ValueError(f"`grad_accum` ({v}) must divide `batch_size` ({b}): each micro-batch has "
                             "batch_size / grad_accum prompts")
        return v

    @field_validator("resume")
    @classmethod
    def _resumable(cls, v: bool, info: ValidationInfo) -> bool:
        if v and not info.data.get("checkpoint_dir"):
            raise ValueError("`resume` needs `checkpoint_dir` (where the last checkpoint was written)")
        return v

    @model_validator(mode="after")
    def _every_option_applies(self) -> TrainConfig:
        """Refuse a value given to a field that would have no effect in this configuration: an option is
        honoured or refused, never accepted and ignored."""
        given = [f for f in type(self).model_fields
                 if getattr(self, f) != type(self).model_fields[f].get_default(call_default_factory=True)]
        problems = []

        def refuse(names: Any, why: str) -> None:
            names = [n for n in given if n in names]
            if names:
                problems.append(f"{', '.join(f'`{n}={getattr(self, n)!r}`' for n in names)}: no effect {why}")

        if not self.checkpoint_dir:
            refuse({"checkpoint_every"}, "without `checkpoint_dir` (where checkpoints are written); set "
                   "checkpoint_dir or drop it")
        if not self.teacher_checkpoint:
            refuse({"teacher_t"}, "without `teacher_checkpoint` (the policy teacher it is the temperature of); "
                   "set teacher_checkpoint or drop it")
        if self.schedule == "constant":
            refuse({"min_lr_ratio"}, "with schedule='constant' (it is the cosine schedule's floor); use "
                   "schedule='cosine' or drop it")
        alg = ALGORITHMS.get(self.algo)
        if alg is not None and alg.unused:
            refuse(alg.unused - alg.reads(dict(self.algo_params)), f"on `{self.algo}`: {alg.unused_reason}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @classmethod
    def build(cls, config: TrainConfig | None = None, **fields: Any) -> TrainConfig:
        """A config from a base config plus keyword overrides, validated: every problem in one
        :class:`~noisy_expert_gym.declarations.ConfigError`."""
        data = {**(config.to_dict() if config is not None else {}), **fields}
        return cls.parse(data, "training configuration")

    def identity(self) -> dict[str, Any]:
        """The fields that define what the run learns (all but :attr:`NOT_IDENTITY`); for a plugin
        algorithm also its file's digest (``algo_code``), so an edited plugin is another run."""
        out = {k: v for k, v in self.to_dict().items() if k not in self.NOT_IDENTITY}
        if (digest := plugin_digest(self.algo)) is not None:
            out["algo_code"] = digest
        return out

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    @classmethod
    def field_names(cls) -> list[str]:
        return list(cls.model_fields)


__all__ = ["TrainConfig"]
