"""Training configuration: one dataclass, every field exposed on the command line."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainConfig:
    """Everything that defines a training run (with ``seed``, its identity)."""

    algo: str = "nail-f"
    """Algorithm name from the registry (`neg train --list` shows them)."""
    env_id: str = "NoisyModAdd-v0"
    """A registered env id with an expert oracle."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for gym.make (eta, m, law, ...)."""
    algo_params: dict[str, Any] = field(default_factory=dict)
    """Algorithm-specific hyperparameters (beta, tau, lam, ...); see each algorithm's defaults."""
    budget_trajectories: int = 100_000
    """Expert-trajectory budget: an online update over k student rollouts spends k; BC's N-rollout dataset spends N."""
    budget_queries: int | None = None
    """Optional cap on expert prefix-queries (training stops at whichever budget runs out first)."""
    seed: int = 0
    """Seeds the model init, prompts, rollouts and expert sampling."""
    device: str = "auto"
    """`auto` picks CUDA, then MPS, then CPU."""
    precision: str = "auto"
    """`auto` (bf16 where supported), `bf16` or `fp32`."""
    compile: str = "auto"
    """torch.compile: `auto` (on CUDA only), `on`, `off`."""
    preset: str = "cpu-rope"
    """Policy preset: `paper` (1 layer, 8 heads, width 512), `cpu`, `cpu-rope`, `tiny`, or `hf:<name or path>` (an HF causal-LM student)."""
    model: dict[str, Any] = field(default_factory=dict)
    """Overrides of the preset's fields (n_layer, n_head, n_embd, dropout)."""
    batch_size: int = 256
    """Trajectories (prompts) per update."""
    lr: float = 3e-3
    """Peak AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    warmup_updates: int = 20
    """Linear warm-up length in updates."""
    schedule: str = "constant"
    """Learning-rate schedule after warm-up: `constant` or `cosine` (to 10% at the end of the budget)."""
    grad_clip: float = 1.0
    """Global gradient-norm clip (0 disables)."""
    eval_every: int = 0
    """Evaluate every this many trajectories (0: 20 evaluations over the budget)."""
    eval_prompts: int = 1024
    """Held-out prompts per evaluation (drawn from a fixed evaluation seed)."""
    eval_env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Overrides of env_kwargs for the evaluation env, e.g. {"split": "test"} on GSM-8K
    (default: evaluate on held-out prompts drawn from the training env)."""
    eval_seed: int = 123_456_789
    """Seed of the held-out evaluation prompts (never used for training)."""
    stop_at: float | None = None
    """Stop early once greedy_full_exact reaches this value at an evaluation."""
    checkpoint_dir: str | None = None
    """Directory for atomic checkpoints (needed for resume)."""
    checkpoint_every: int = 0
    """Write a checkpoint every this many updates (0: at every evaluation)."""
    resume: bool = False
    """Continue from the last checkpoint in checkpoint_dir."""
    tensorboard_dir: str | None = None
    """Write TensorBoard scalars here (needs the `tensorboard` extra)."""
    progress: bool = True
    """Show a progress bar with live metrics."""
    data_dir: str | None = None
    """Cache directory for offline datasets (default ~/.cache/noisy_expert_gym)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]
