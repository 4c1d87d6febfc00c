"""A Hugging Face causal-LM teacher for NoisyGSM8K, with the oracle interface of :class:`Expert`.

The noisy expert of the paper's GSM-8K runs is a pretrained LM sampled at
temperature t: pi~(.|s) = softmax(logits(s) / t) (law ``temperature``; t = 1
"low", t = 4 "high" noise). The clean expert (``greedy=True``) is the same model
decoding greedily: pi*(.|s) = one-hot(argmax logits(s)) -- what the paper
evaluates.

:class:`HFTeacher` answers the same calls as :class:`~noisy_expert_gym.oracle.Expert`
-- ``probs``, ``sample``, ``log_prob``, ``probs_along``, ``rollout``,
``num_queries``/``reset_queries``, ``torch_generator`` -- batched on the teacher's
device. numpy inputs give numpy outputs; torch inputs give torch outputs on the
input's device.

Observations follow :mod:`noisy_expert_gym.tasks.gsm8k` with an
:class:`~noisy_expert_gym.tasks.gsm8k.HFTokenizer`: the left-padded prompt (chat
template with a system prompt when the tokenizer has one), then the generated
tokens. PAD (= ``len(tokenizer)``) is replaced by a real id and masked out, and
position ids skip the padding, so a left-padded prompt gives the same logits as
the unpadded one. Generation stops at the first of the task's stop tokens
(``task.eos_tokens``: the chat template's end of turn, the tokenizer's EOS and the
model's ``generation_config.eos_token_id``; see
:mod:`~noisy_expert_gym.tasks.gsm8k.tokenizer`).

Real use (GPU)::

    env = gym.make("NoisyGSM8K-v1", split="test", expert="hf:meta-llama/Llama-3.2-1B-Instruct",
                   t=1.0, max_new_tokens=512, device="cuda", torch_dtype="bfloat16")
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from noisy_expert_gym.oracle import LogitsOracle, RngLike
from noisy_expert_gym.sampling import sample_from
from noisy_expert_gym.utils import is_torch


def load_teacher(name_or_path: str, device: Any = None, torch_dtype: Any = None,
                 **kwargs: Any) -> tuple[Any, Any]:
    """(model, tokenizer) of a causal LM by hub name or local path, in eval mode on `device`.

    Extra keyword arguments go to ``AutoModelForCausalLM.from_pretrained``.
    """
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise ImportError("the `hf:` teacher needs `transformers`: pip install 'noisy-expert-gym[hf]' "
                          "(or pip install transformers)") from None
    if isinstance(torch_dtype, str):
        torch_dtype = getattr(torch, torch_dtype)
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    if torch_dtype is not None:
        kwargs["dtype"] = torch_dtype
    model = AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)
    if device is not None:
        model = model.to(device)
    return model.eval(), tokenizer


def _max_positions(model: Any) -> int | None:
    cfg = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "n_ctx"):
        v = getattr(cfg, name, None)
        if isinstance(v, int):
            return v
    return None


class HFTeacher(LogitsOracle):
    """A causal LM as a queryable expert over a :class:`~noisy_expert_gym.tasks.gsm8k.GSM8KTask`.

    Args:
        task: the task core, built with the teacher's tokenizer (an ``HFTokenizer``).
        model: a ``transformers`` causal LM (shared between a noisy and a clean teacher).
        t: sampling temperature > 0 (the noise level).
        greedy: be the clean expert: one-hot on the argmax (``t`` is ignored).
        rng: numpy Generator (or a callable returning the current one) for
            sampling on numpy inputs and for seeding :meth:`torch_generator`.
        max_batch: rows per forward pass (bounds memory); None: the whole batch.
    """

    full_numpy_check = False  # observations are checked for shape only, as before

    def __init__(self, task: Any, model: Any, t: float = 1.0, greedy: bool = False, rng: RngLike = None,
                 max_batch: int | None = None) -> None:
        import torch

        if not greedy and (not isinstance(t, (int, float)) or isinstance(t, bool) or not t > 0):
            raise ValueError(f"the temperature `t` must be a number > 0, got {t!r}")
        tok = task.tokenizer
        if getattr(tok, "name", None) != "hf":
            raise ValueError(f"an HF teacher needs the task to use its tokenizer (an HFTokenizer), got {tok!r}")
        n_out = model.get_output_embeddings().weight.shape[0]
        if n_out < task.num_actions:
            raise ValueError(f"the model has {n_out} output logits but the tokenizer {task.num_actions} tokens: "
                             "model and tokenizer do not belong together")
        max_pos = _max_positions(model)
        if max_pos is not None and task.obs_len > max_pos:
            raise ValueError(f"prompt ({task.prompt_len}) + max_new_tokens ({task.horizon}) = {task.obs_len} tokens "
                             f"exceeds the model's {max_pos} positions; lower max_new_tokens or max_prompt_tokens")
        if max_batch is not None and max_batch < 1:
            raise ValueError(f"`max_batch` must be >= 1 or None, got {max_batch!r}")
        self.task = task
        self.model = model
        self.t = float(t)
        self.is_clean = bool(greedy)
        self.law = "clean" if greedy else "temperature"
        self.eta = None  # temperature noise has no eta; see `t`
        self.max_batch = max_batch
        self.device = next(model.parameters()).device
        LogitsOracle.__init__(self, rng)
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"  # transformers 5 vs 4
        self._keep_arg = "logits_to_keep" if "logits_to_keep" in params else None
        self._eos = torch.tensor(task.tokenizer.eos_tokens, device=self.device)

    def __repr__(self) -> str:
        what = "greedy" if self.is_clean else f"t={self.t}"
        return f"HFTeacher({getattr(self.model, 'name_or_path', type(self.model).__name__)!r}, {what})"

    # ----- model calls ---------------------------------------------------------
    def _ids(self, x: Any) -> Any:
        import torch

        return torch.as_tensor(np.asarray(x) if not is_torch(x) else x, device=self.device).long()

    def _logits(self, ids: Any, keep: int) -> Any:
        """Logits (N, keep, A) at the last `keep` positions of ids (N, L) (PAD allowed), float32."""
        import torch

        chunks = []
        step = self.max_batch or ids.shape[0]
        with torch.no_grad():
            for s in range(0, ids.shape[0], step):
                x, mask = self.task.tokenizer.model_inputs(ids[s : s + step])
                pos = (mask.cumsum(1) - 1).clamp(min=0)
                kw = {self._keep_arg: keep} if self._keep_arg else {}
                out = self.model(input_ids=x, attention_mask=mask, position_ids=pos, use_cache=False, **kw)
                chunks.append(out.logits[:, -keep:, : self.task.num_actions].float())
        return torch.cat(chunks)

    def _probs(self, obs: Any) -> Any:
        """Distribution (N, A) at each prefix of a batch of observations, on the teacher's device."""
        import torch

        p = self.task.prompt_len
        ids = self._ids(obs)
        t = (ids[:, p:] != self.task.pad_token).sum(1)
        t_max = int(t.max())
        logits = self._logits(ids[:, : p + t_max], keep=t_max + 1)  # positions p-1 .. p+t_max-1
        last = logits[torch.arange(ids.shape[0], device=ids.device), t]
        return self._dist(last)

    # ----- single prefixes (probs, log_prob: LogitsOracle) -----------------
    def sample(self, obs: Any, generator: Any = None) -> Any:
        """Sample next tokens at each prefix, (N,) (a scalar for one observation).

        numpy inputs draw from the seeded numpy RNG; torch inputs from `generator`
        or one on the teacher's device seeded from it.
        """
        import torch

        obs, single = self._batch(obs)
        self.num_queries += obs.shape[0]
        probs = self._probs(obs)
        if is_torch(obs):
            gen = generator or self.torch_generator(self.device)
            if gen.device != probs.device:
                probs = probs.to(gen.device)
            out = torch.multinomial(probs, 1, generator=gen)[:, 0].to(obs.device)
        else:
            out = sample_from(probs.double().cpu().numpy(), generator or self.rng)
        return out[0] if single else out

    # ----- every prefix of complete chains -------------------------------------
    def probs_along(self, prompts: Any, chain: Any) -> Any:
        """The teacher's distribution at every prefix chain[:, :t], t = 0..H-1, in one forward: (N, H, A)."""
        import torch

        h = chain.shape[1]
        self.num_queries += chain.shape[0] * h
        ids = torch.cat([self._ids(prompts), self._ids(chain)[:, : h - 1]], dim=1)
        return self._out(self._dist(self._logits(ids, keep=h)), chain)

    def rollout(self, prompts: Any, generator: Any = None) -> Any:
        """The teacher's own generations from `prompts`, KV-cached: chains (N, H), EOS-padded after EOS.

        Counts one query per generated (not yet finished) token.
        """
        import torch

        task = self.task
        p_ids = self._ids(prompts)
        n, h = p_ids.shape[0], task.horizon
        gen = generator or self.torch_generator(self.device)
        chain = torch.full((n, h), task.eos_token, dtype=torch.long, device=self.device)
        step = self.max_batch or n
        with torch.no_grad():
            for s in range(0, n, step):
                chain[s : s + step] = self._rollout_chunk(p_ids[s : s + step], gen)
        return chain.to(prompts.device) if is_torch(prompts) else chain.cpu().numpy()

    def _rollout_chunk(self, prompts: Any, gen: Any) -> Any:
        import torch

        task = self.task
        n, h = prompts.shape[0], task.horizon
        x, mask = task.tokenizer.model_inputs(prompts)
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        out = self.model(input_ids=x, attention_mask=mask, position_ids=pos, use_cache=True)
        next_pos = pos[:, -1:] + 1
        chain = torch.full((n, h), task.eos_token, dtype=torch.long, device=self.device)
        done = torch.zeros(n, dtype=torch.bool, device=self.device)
        for t in range(h):
            probs = self._dist(out.logits[:, -1, : task.num_actions].float())
            if self.is_clean:
                a = probs.argmax(-1)
            else:
                a = torch.multinomial(probs.to(gen.device), 1, generator=gen)[:, 0].to(self.device)
            self.num_queries += int((~done).sum())
            a = torch.where(done, chain[:, t], a)
            chain[:, t] = a
            done |= torch.isin(a, self._eos)
            if bool(done.all()) or t == h - 1:
                break
            cache = out.get("cache", None)
            if cache is None:
                cache = out.get("past_key_values", None)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            out = self.model(input_ids=a[:, None], attention_mask=mask, position_ids=next_pos,
                             use_cache=True, **{self._cache_arg: cache})
            next_pos = next_pos + 1
        return chain
