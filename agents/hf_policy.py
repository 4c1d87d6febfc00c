"""A Hugging Face causal LM as the student policy, optionally LoRA-adapted (``peft``).

:class:`HFPolicy` has the entry points of :class:`~agents.policy.TransformerPolicy`
(``forward``, ``chain_logits``, ``generate``, ``num_params``, ``.cfg``), so the
shared trainer and every algorithm distil an HF teacher into an HF student
unchanged. The trainer builds it through :func:`agents.policies.build_policy` when the
preset is ``"hf:<model name or local path>"``; ``TrainConfig.model`` (``--model-kw``) then
holds the options of :data:`HF_OPTIONS` instead of transformer sizes.

Conventions (those of :mod:`noisy_expert_gym.tasks.gsm8k.tokenizer`): actions are the
token ids ``0 .. num_actions - 1`` = ``len(tokenizer)``, so the LM head is cut
to its first ``num_actions`` rows (many checkpoints pad their vocabulary). The
task's PAD id (``num_actions`` with an HF tokenizer) is never fed to the model:
it is replaced by a real id and masked out, and position ids count only real
tokens, so a left-padded prompt gives the logits of the unpadded one -- the
trainer's teacher-forced ``forward(cat(prompts, chain[:, :-1]))[:, P-1:]`` is
right on the env's left-padded prompts. The student must share the task's
(= the teacher's) vocabulary id for id; anything else is a ``ValueError``.

Generation uses the model's KV cache at any temperature, calls the roll-in hook
``step_fn`` like TransformerPolicy, and stops once every row has written one of the
task's stop tokens (``task.eos_tokens``: on ``NoisyGSM8K-v1`` every end-of-turn token
of the chat template -- Gemma's ``<end_of_turn>`` -- and the tokenizer's EOS): the rest
of the chain is the first stop token (tokens after it are masked by the trainer
anyway), which saves most of a long horizon.

Real use (GPU): the paper's GSM-8K runs (docs/design.md §3) distil a 1B instruction-
tuned teacher into a 270M student with LoRA, noise = teacher temperature
(t = 1 "low", t = 4 "high"), greedy evaluation on all 1,319 test problems.
Gemma 3 1B-it and Gemma 3 270M-it are that pair (one Gemma 3 tokenizer; the
vocabulary check runs before training starts; gated on the hub: accept the
licence and log in first). ``scoreboards/sweeps/shipped_specs/gsm8k-paper.toml`` is the authors'
recipe, each value with its source; one run by hand::

    neg train --algo nail-f --env NoisyGSM8K-v1 \\
        --env-kw expert=hf:google/gemma-3-1b-it --env-kw t=1.0 --env-kw answer_format=boxed \\
        --env-kw dataset=tinygsm --env-kw limit=400000 --env-kw max_new_tokens=1024 \\
        --env-kw max_prompt_tokens=384 --env-kw device=cuda --env-kw torch_dtype=bfloat16 --env-kw max_batch=4 \\
        --eval-env-kw dataset=gsm8k --eval-env-kw split=test --eval-mode all --no-eval-sampled \\
        --eval-batch-size 64 --val-env-kwargs answer_format=#### --val-env-kwargs strip_annotations=false \\
        --preset hf:google/gemma-3-270m-it \\
        --model-kw 'lora={"r": 128, "alpha": 256, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}' \\
        --model-kw torch_dtype=bfloat16 \\
        --device cuda --precision bf16 --compile off --batch-size 64 --grad-accum 16 --prompt-order epoch \\
        --lr 1e-4 --weight-decay 0.01 --schedule cosine --warmup-updates 625 --min-lr-ratio 0.01 \\
        --budget 400000 --seed 0 --checkpoint-dir runs/gsm8k-nail-f-t1 --out runs/gsm8k-nail-f-t1.json

(``$NEG_TINYGSM_DIR`` / ``$NEG_GSM8K_DIR`` point at the data.) Swap ``--algo`` for
``opd-f``, ``nail-mixed --algo-kw beta=0.5``, ``bc``, ... and ``t=4.0`` for the
high-noise runs. An ungated pair with one tokenizer: teacher
``hf:Qwen/Qwen2.5-1.5B-Instruct``, student ``hf:Qwen/Qwen2.5-0.5B-Instruct``.
``hf:meta-llama/Llama-3.2-1B-Instruct`` works as a teacher, but no smaller Llama 3.2
shares its tokenizer; its student would be ``hf:meta-llama/Llama-3.2-1B`` (+ LoRA).
The download-free reference teacher speaks any of these vocabularies
(``--env-kw tokenizer=hf:google/gemma-3-270m-it`` without ``expert``).

Notes for that scale. Base weights frozen in bf16 with fp32 LoRA adapters is
the cheap setting; full fine-tuning (no ``lora``) wants fp32 weights. With an LM
teacher the trainer holds (micro-batch, H, vocab) teacher probabilities and
student logits -- with Gemma's 262k vocabulary ~1 GB per fp32 row of H = 1,024
tokens -- so ``--grad-accum`` splits each update into micro-batches (collected,
queried and back-propagated in turn; one step on the token mean of the whole
batch, as the authors' trainer does), ``--model-kw gradient_checkpointing=true``
trades compute for activations, and the evaluation's teacher-forced loss runs a
few rows per pass. The reference teacher under a mixture / absorbing law never
builds the dense rows (:mod:`agents.expert_rows`). ``--compile off``:
torch.compile of an HF student is untested.

Offline (no download; what the tests do): save a tiny random
``GPT2LMHeadModel`` and a locally built tokenizer with ``save_pretrained`` to a
directory ``d`` and use ``expert=f"hf:{d}"`` and ``preset=f"hf:{d}"``.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from agents.contracts import StepFn
from agents.policy import TransformerPolicy
from noisy_expert_gym.utils import did_you_mean

__all__ = ["HF_OPTIONS", "PAPER_LORA", "HFPolicy", "HFPolicyConfig", "apply_lora", "check_student_vocab"]

HF_OPTIONS: dict[str, str] = {
    "lora": "LoRA adapters via peft: True (defaults) or a dict r, alpha, dropout, target_modules, "
            "plus any other peft.LoraConfig field; base weights are frozen",
    "torch_dtype": "dtype of the loaded weights: `float32`, `bfloat16`, `float16` (default: float32)",
    "tokenizer": "where the student's tokenizer lives (default: the model's own name or path)",
    "gradient_checkpointing": "recompute activations in backward (less memory, more compute)",
    "attn_implementation": "transformers attention kernel: `sdpa`, `eager`, `flash_attention_2`",
}
"""Keys of ``TrainConfig.model`` understood with an ``hf:`` preset."""

LORA_DEFAULTS: dict[str, Any] = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": None}
"""LoRA defaults; ``target_modules=None`` lets peft pick its per-architecture default."""

PAPER_LORA: dict[str, Any] = {"r": 128, "alpha": 256, "dropout": 0.0,
                              "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                 "down_proj"]}
"""The paper authors' LoRA on GSM-8K (their public code: rank 128, alpha = 2 x rank, no dropout, every
attention and MLP projection of a Llama / Gemma block): ``model={"lora": PAPER_LORA}``."""


@dataclass
class HFPolicyConfig:
    """What an :class:`HFPolicy` was built from and the task ids it follows."""

    name_or_path: str
    """Hub name or local path of the model (``"<in memory>"`` for a wrapped model)."""
    num_actions: int
    """Size of the action head: the first ``num_actions`` logits of the LM."""
    vocab_size: int
    """Number of task input ids (actions, PAD and, for built-in tokenizers, SEP)."""
    block_size: int
    """Maximum sequence length: the model's positions (the task's obs_len - 1 when it has no limit)."""
    pad_token: int | None
    """The task's PAD id: replaced by ``fill_token`` and masked out; None: the task never pads."""
    fill_token: int
    """The real id fed in place of PAD (its value is irrelevant: it is masked)."""
    eos_tokens: tuple[int, ...] = ()
    """End-of-sequence ids: generation stops once every row has written one."""
    lora: dict[str, Any] | None = None
    """The LoRA settings applied (None: every weight trains)."""
    options: dict[str, Any] = field(default_factory=dict)
    """The other :data:`HF_OPTIONS` it was built with."""


def _dtype(name: Any) -> Any:
    if name is None or isinstance(name, torch.dtype):
        return name
    dt = getattr(torch, str(name), None)
    if not isinstance(dt, torch.dtype):  # a wrong name, not a wrong type
        raise ValueError(  # noqa: TRY004
            f"`torch_dtype` must be a torch dtype name such as `bfloat16` or `float32`, got {name!r}")
    return dt


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "tokenizer.model",
                    "spiece.model", "sentencepiece.bpe.model")


def _has_tokenizer(name_or_path: str) -> bool:
    # A local model directory saved without its tokenizer has none (transformers would build an
    # empty one from the model type); a hub name is assumed to ship one.
    if not os.path.isdir(name_or_path):
        return True
    return any(os.path.exists(os.path.join(name_or_path, f)) for f in _TOKENIZER_FILES)


def _tokenizer_len(tok: Any) -> int:
    hf = getattr(tok, "hf", tok)  # an HFTokenizer or a transformers tokenizer
    return len(hf)


def check_student_vocab(task: Any, model: Any, tokenizer: Any = None) -> None:
    """Raise ValueError unless `model` (with its `tokenizer`) reads and writes the task's token ids.

    With a tokenizer, it must be the task's vocabulary id for id
    (:func:`~noisy_expert_gym.tasks.gsm8k.check_same_vocab`); without one (a model
    built from a config for a tokenizer-less task such as modadd) the model's
    vocabulary must be exactly the task's input ids. Either way the embedding
    must cover every id fed and the LM head every action.
    """
    from noisy_expert_gym.tasks.gsm8k.tokenizer import check_same_vocab

    A = task.num_actions
    task_tok = getattr(task, "tokenizer", None)
    n_in = model.get_input_embeddings().weight.shape[0]
    head = model.get_output_embeddings()
    n_out = head.weight.shape[0] if head is not None else int(model.config.vocab_size)
    if tokenizer is not None:
        if task_tok is None:
            raise ValueError(f"the student has a tokenizer but the task {task!r} has none: its ids are task "
                             "tokens, not text; use a model built for the task's vocabulary, without a tokenizer")
        check_same_vocab(tokenizer, task_tok)  # 'student and teacher tokenizers differ ...'
        if _tokenizer_len(tokenizer) != A:
            raise ValueError(f"the student's tokenizer has {_tokenizer_len(tokenizer)} tokens but the task "
                             f"{A} actions: they must be one vocabulary")
        needed = A  # prompt and chain ids are tokenizer ids; PAD is replaced
    elif getattr(task_tok, "name", None) == "hf":
        raise ValueError("cannot check the student's vocabulary against the teacher's: the student has no "
                         "tokenizer; save the teacher's tokenizer beside the model or pass "
                         "model={'tokenizer': '<teacher name or path>'}")
    else:
        if n_in != task.vocab_size:
            raise ValueError(f"the student's vocabulary ({n_in} ids) does not match the task's "
                             f"({task.vocab_size} input ids, {A} actions); build the model with "
                             f"vocab_size={task.vocab_size}")
        needed = task.vocab_size
    if n_in < needed or n_out < A:
        raise ValueError(f"the student has {n_in} input embeddings and {n_out} output logits but the task "
                         f"needs {needed} and {A}: call model.resize_token_embeddings(len(tokenizer)) "
                         "(and use the same tokenizer for teacher and student)")


def apply_lora(model: Any, lora: bool | dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Wrap `model` with peft LoRA adapters (base weights frozen); returns (peft model, settings)."""
    try:
        import peft
    except ImportError:
        raise ImportError("LoRA needs `peft`: pip install 'noisy-expert-gym[hf]' (or pip install peft)") from None
    if lora is True:
        lora = {}
    if not isinstance(lora, dict):
        raise TypeError(f"`lora` must be True or a dict (r, alpha, dropout, target_modules, ...), got {lora!r}")
    settings = {**LORA_DEFAULTS, **lora}
    kw = {k: v for k, v in settings.items() if k not in ("alpha", "dropout")}
    kw.update(lora_alpha=settings["alpha"], lora_dropout=settings["dropout"], task_type="CAUSAL_LM")
    fields = set(inspect.signature(peft.LoraConfig).parameters)
    unknown = sorted(set(kw) - fields)
    if unknown:
        raise ValueError(f"unknown LoRA option(s) {unknown}; use r, alpha, dropout, target_modules or a "
                         f"peft.LoraConfig field.{did_you_mean(unknown[0], [*fields, 'alpha', 'dropout'])}")
    try:
        wrapped = peft.get_peft_model(model, peft.LoraConfig(**kw))
    except ValueError as e:  # e.g. no default target_modules for this architecture
        raise ValueError(f"could not add LoRA adapters ({e}); pass lora={{'target_modules': [...]}} "
                         "(module names such as q_proj, v_proj) or 'all-linear'") from None
    return wrapped, settings


class HFPolicy(nn.Module):
    """A causal LM mapping token prefixes to next-action logits, TransformerPolicy's interface.

    Args:
        model: a ``transformers`` causal LM, or a ``peft`` model wrapping one.
        task: the task core (for its vocabulary, PAD, EOS and sequence length).
        tokenizer: the student's tokenizer (a ``transformers`` tokenizer or an
            ``HFTokenizer``); checked against the task's (see :func:`check_student_vocab`).
            None: the model reads the task's ids directly (a tokenizer-less task).
        lora: add LoRA adapters (True or a dict, see :func:`apply_lora`); None: train every weight.
        gradient_checkpointing: recompute activations in backward to save memory.
        name_or_path: recorded in ``cfg`` (``from_pretrained`` passes it).
        options: other options to record in ``cfg``.

    Raises:
        ValueError: when the student's vocabulary is not the task's or the task's
            sequences are longer than the model's positions.
    """

    def __init__(self, model: Any, task: Any, tokenizer: Any = None, lora: bool | dict[str, Any] | None = None,
                 gradient_checkpointing: bool = False, name_or_path: str | None = None,
                 options: dict[str, Any] | None = None) -> None:
        super().__init__()
        from noisy_expert_gym.tasks.gsm8k.hf_teacher import _max_positions

        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        check_student_vocab(task, base, tokenizer)
        max_pos = _max_positions(base)
        need = task.obs_len - 1  # the longest input: prompt + all but the last action
        if max_pos is not None and need > max_pos:
            raise ValueError(f"prompt ({task.prompt_len}) + max_new_tokens ({task.horizon}) - 1 = {need} "
                             f"tokens exceeds the student's {max_pos} positions; lower max_new_tokens or "
                             "max_prompt_tokens")
        if gradient_checkpointing:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        settings = None
        if lora is not None and lora is not False:
            model, settings = apply_lora(model, lora)
        task_tok = getattr(task, "tokenizer", None)
        pad = getattr(task, "pad_token", None)
        self.model = model  # registered: the trainer's optimizer and checkpoints see every weight
        self.cfg = HFPolicyConfig(
            name_or_path=name_or_path or getattr(base, "name_or_path", "") or "<in memory>",
            num_actions=task.num_actions, vocab_size=task.vocab_size, block_size=max_pos or need,
            pad_token=None if pad is None else int(pad),
            fill_token=int(getattr(task_tok, "model_fill_token", 0)),
            eos_tokens=tuple(int(e) for e in getattr(task_tok, "eos_tokens", ())),
            lora=settings, options=dict(options or {}, gradient_checkpointing=gradient_checkpointing))
        params = inspect.signature(self.lm.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"  # transformers 5 vs 4
        self._has_keep = "logits_to_keep" in params
        self.register_buffer("_eos", torch.tensor(self.cfg.eos_tokens, dtype=torch.long), persistent=False)

    @classmethod
    def from_pretrained(cls, name_or_path: str, task: Any, lora: bool | dict[str, Any] | None = None,
                        torch_dtype: Any = None, tokenizer: str | None = None,
                        gradient_checkpointing: bool = False, attn_implementation: str | None = None) -> HFPolicy:
        """Load a causal LM and its tokenizer by hub name or local path (see :data:`HF_OPTIONS`).

        A model directory without tokenizer files is a student for a
        tokenizer-less task (its ids are the task's).
        """
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise ImportError("an `hf:` student needs `transformers`: pip install 'noisy-expert-gym[hf]' "
                              "(or pip install transformers)") from None
        if not name_or_path:
            raise ValueError("an `hf:` preset needs a model: `hf:<hub name or local path>`")
        kw: dict[str, Any] = {}
        if torch_dtype is not None:
            kw["dtype"] = _dtype(torch_dtype)
        if attn_implementation is not None:
            kw["attn_implementation"] = attn_implementation
        model = AutoModelForCausalLM.from_pretrained(name_or_path, **kw)
        tok = None  # no tokenizer files: the model reads the task's ids
        if tokenizer is not None or _has_tokenizer(name_or_path):
            tok = AutoTokenizer.from_pretrained(tokenizer or name_or_path)
        options = {"torch_dtype": None if torch_dtype is None else str(torch_dtype), "tokenizer": tokenizer,
                   "attn_implementation": attn_implementation}
        return cls(model, task, tokenizer=tok, lora=lora, gradient_checkpointing=gradient_checkpointing,
                   name_or_path=name_or_path, options=options)

    # ----- plumbing ---------------------------------------------------------------
    @property
    def lm(self) -> Any:
        """The transformers model (LoRA layers injected in place when peft wraps it)."""
        m = self.model
        return m.get_base_model() if hasattr(m, "get_base_model") else m

    def num_params(self) -> int:
        """Total number of parameters (embeddings included; frozen ones too)."""
        return sum(p.numel() for p in self.parameters())

    def num_trainable_params(self) -> int:
        """Parameters that receive gradients (only the adapters under LoRA)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _check_length(self, length: int, what: str) -> None:
        if length > self.cfg.block_size:
            raise ValueError(f"{what} needs a sequence of length {length} but the student has "
                             f"{self.cfg.block_size} positions")

    def model_inputs(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(input ids with PAD replaced, attention mask, position ids skipping the padding) of (B, T) tokens."""
        if self.cfg.pad_token is None:
            mask = torch.ones_like(tokens)
            return tokens, mask, torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens)
        real = tokens != self.cfg.pad_token
        ids = tokens.masked_fill(~real, self.cfg.fill_token)
        mask = real.long()
        return ids, mask, (mask.cumsum(1) - 1).clamp(min=0)

    def _call(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, keep: int = 0,
              cache: Any = None, use_cache: bool = False) -> tuple[torch.Tensor, Any]:
        kw: dict[str, Any] = {"logits_to_keep": keep} if keep and self._has_keep else {}
        if cache is not None:
            kw[self._cache_arg] = cache
        out = self.lm(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=use_cache, **kw)
        logits = out.logits if keep == 0 or self._has_keep else out.logits[:, -keep:]
        new_cache = out.get("cache", None) if use_cache else None
        if use_cache and new_cache is None:
            new_cache = out.get("past_key_values", None)
        return logits[..., : self.cfg.num_actions], new_cache  # the LM head cut to the actions

    # ----- TransformerPolicy's entry points ----------------------------------------
    def forward(self, tokens: torch.Tensor, logits_to_keep: int = 0, first: int = 0) -> torch.Tensor:
        """Full causal pass.

        Args:
            tokens: ``(B, T)`` long task ids (PAD allowed anywhere in the left-padded prompt).
            logits_to_keep: > 0: only the last this many positions (saves the LM head on the prompt).
            first: logits from this position on only (the trainer's chain positions; as
                :meth:`agents.policy.TransformerPolicy.forward`); ignored when ``logits_to_keep`` is set.

        Returns:
            ``(B, T - first, A)`` logits (``(B, logits_to_keep, A)``); row ``t`` scores the action
            following ``tokens[:, :first+t+1]``.
        """
        self._check_length(tokens.shape[1], "forward")
        ids, mask, pos = self.model_inputs(tokens)
        keep = logits_to_keep or (tokens.shape[1] - first if first else 0)
        return self._call(ids, mask, pos, keep=keep)[0]

    def chain_logits(self, prompts: torch.Tensor, chain: torch.Tensor) -> torch.Tensor:
        """Logits at every prefix of ``chain`` in one teacher-forced pass: ``(B, H, A)``.

        Row ``t`` predicts ``chain[:, t]`` from ``prompts`` and ``chain[:, :t]``
        (as :meth:`TransformerPolicy.chain_logits`); the LM head runs on those H rows only.
        """
        B, P = prompts.shape
        H = chain.shape[1]
        if P < 1:
            raise ValueError("chain_logits needs a non-empty prompt (P >= 1)")
        if H == 0:
            return prompts.new_empty((B, 0, self.cfg.num_actions), dtype=torch.float32)
        inp = torch.cat([prompts, chain[:, :-1].to(prompts.dtype)], dim=1)  # (B, P+H-1)
        return self(inp, logits_to_keep=H)  # (B, H, A)

    _next = TransformerPolicy._next  # greedy argmax or an fp32 softmax sample

    def generate(self, prompts: torch.Tensor, horizon: int, temperature: float = 0.0,
                 generator: torch.Generator | None = None, use_cache: bool = True,
                 step_fn: StepFn | None = None) -> torch.Tensor:
        """Roll the policy out for ``horizon`` actions, without gradient.

        Same contract as :meth:`TransformerPolicy.generate` (eval mode restored
        afterwards; both paths draw the same random numbers, so equal generator
        states give equal chains up to floating-point ties), plus: once every row
        has written EOS the remaining columns are EOS and generation stops, and a
        row's tokens after its first EOS are EOS.

        Args:
            prompts: ``(B, P)`` long, left-padded with the task's PAD.
            horizon: number of actions ``H``.
            temperature: 0 for greedy argmax, > 0 to sample ``softmax(logits / T)``.
            generator: ``torch.Generator`` on the model's device, for reproducible sampling.
            use_cache: prefill once, then one cached step per token (HF KV cache);
                ``False`` recomputes the whole prefix every step.
            step_fn: roll-in hook ``step_fn(t, chain, tokens) -> tokens`` (e.g. DAgger's mixture).

        Returns:
            ``(B, H)`` long chain of actions.
        """
        if not temperature >= 0.0:
            raise ValueError(f"`temperature` must be >= 0 (0 = greedy), got {temperature}")
        if horizon < 0:
            raise ValueError(f"`horizon` must be >= 0, got {horizon}")
        B, P = prompts.shape
        if P < 1:
            raise ValueError("generate needs a non-empty prompt (P >= 1)")
        self._check_length(P + max(horizon, 1) - 1, "generate")
        chain = prompts.new_empty((B, horizon), dtype=torch.long)
        if horizon == 0:
            return chain
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                steps = self._cached(prompts, chain) if use_cache else self._uncached(prompts, chain)
                done = torch.zeros(B, dtype=torch.bool, device=prompts.device)
                eos = self._eos.to(prompts.device)
                for t, logits in enumerate(steps):
                    tok = self._next(logits, temperature, generator)  # (B,)
                    if step_fn is not None:
                        tok = step_fn(t, chain, tok)
                    if len(eos):
                        tok = torch.where(done, eos[0], tok)  # EOS-padded after the first EOS
                        done |= torch.isin(tok, eos)
                    chain[:, t] = tok
                    if len(eos) and t + 1 < horizon and bool(done.all()):
                        chain[:, t + 1 :] = eos[0]
                        break
        finally:
            self.train(was_training)
        return chain

    def _uncached(self, prompts: torch.Tensor, chain: torch.Tensor) -> Iterator[torch.Tensor]:
        # (B, A) logits after prompts + chain[:, :t], recomputing the prefix each step.
        for t in range(chain.shape[1]):
            seq = torch.cat([prompts, chain[:, :t].to(prompts.dtype)], dim=1)
            ids, mask, pos = self.model_inputs(seq)
            yield self._call(ids, mask, pos, keep=1)[0][:, -1]

    def _cached(self, prompts: torch.Tensor, chain: torch.Tensor) -> Iterator[torch.Tensor]:
        # Prefill the prompt once, then feed back one action per step through the KV cache.
        ids, mask, pos = self.model_inputs(prompts)
        logits, cache = self._call(ids, mask, pos, keep=1, use_cache=True)
        yield logits[:, -1]
        nxt = pos[:, -1:] + 1  # (B, 1): the next real position of each row
        for t in range(1, chain.shape[1]):
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            logits, cache = self._call(chain[:, t - 1 : t], mask, nxt, keep=1, cache=cache, use_cache=True)
            nxt = nxt + 1
            yield logits[:, -1]
