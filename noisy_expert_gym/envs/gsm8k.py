"""NoisyGSM8K: GSM-8K (or TinyGSM) token generation with a queryable noisy expert (reference or LM
teacher)."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from noisy_expert_gym.envs.modadd import check_action
from noisy_expert_gym.oracle import RngOf
from noisy_expert_gym.problems import Problem, env_problem, problem_attribute
from noisy_expert_gym.tasks.gsm8k.core import GSM8KTask
from noisy_expert_gym.utils import did_you_mean

ENV_ID = "NoisyGSM8K-v1"
RENDER_MODES = ["ansi"]
_METRIC_KEYS = ("full_exact", "final_exact", "correct_prefix_len", "num_errors", "length")
_GREEN, _RED, _RESET = "\x1b[32m", "\x1b[31m", "\x1b[0m"


class NoisyGSM8KEnv(gym.Env):
    """GSM-8K word problems solved token by token, imitated from a noisy expert.

    ## Description
    The agent reads a GSM-8K question and writes a worked solution one token at a
    time, ending with a final-answer line ``#### <number>`` (or ``\\boxed{<number>}``
    with ``answer_format="boxed"``, the paper authors' format) and a stop token
    (EOS). It is rewarded for the final answer. The env carries a queryable
    *noisy expert* ``env.unwrapped.expert`` (pi~ of "Behavior Cloning is Not All
    You Need", arXiv 2606.30923) and, for evaluation only, the clean expert
    ``env.unwrapped.clean_expert``. Two kinds of expert:

    - ``expert="reference"`` (default, no download): a deterministic dynamic
      oracle built from the reference solution (docs/design.md §6; defined precisely in
      :mod:`noisy_expert_gym.tasks.gsm8k.core`, for any tokenizer): on the reference
      path it writes the next reference token; off it, the shortest continuation
      ending with the final-answer line and EOS. Noise ``law``: ``absorbing``
      (default), ``mixture`` or ``biased`` with level ``eta``; U is uniform over
      newline, printable ASCII and EOS (every token with an HF tokenizer); the
      biased slip turns a digit d into (d+1) mod 10. With ``tokenizer="hf:<name>"``
      (or a transformers tokenizer) the same teacher speaks that vocabulary and
      prompts through its chat template: a pretrained student is distilled from
      it without any teacher download.
    - ``expert="hf:<model name or local path>"``: a Hugging Face causal LM
      prompted with a system prompt (through its chat template when it has one);
      noise ``law="temperature"``: pi~ = softmax(logits / t), t = 1 "low" and
      t = 4 "high" as in the paper. The clean expert is its greedy decoding.

    ## Action Space
    ``Discrete(A)``: the next token. Built-in tokenizers: ``char`` (default) A = 97
    (newline, 95 printable ASCII characters, EOS = 96), ``byte`` A = 257 (bytes,
    EOS = 256). With an HF tokenizer, A = ``len(tokenizer)``. An action id is also
    the token's input id. The *stop tokens* (``task.eos_tokens``) end an episode:
    the built-in tokenizers' EOS and ``stop_tokens``; with an HF tokenizer every end-of-turn token of
    its chat template (Gemma's ``<end_of_turn>``, Llama 3's ``<|eot_id|>``, ...), its
    EOS, the LM teacher's ``generation_config.eos_token_id`` and ``stop_tokens``
    (``task.eos_token``, the first, is the one the teachers write).

    ## Observation Space
    ``Box(0, vocab_size - 1, (P + H,), int64)``: the prompt section of P tokens
    (the question left-padded, then the separator SEP = A; an LM teacher's chat
    template instead), then the H = ``max_new_tokens`` generated tokens, padded
    with PAD (A + 1 built-in, A with an LM teacher). P is the longest prompt of
    the loaded split (before ``subset``) unless ``max_prompt_tokens`` is given:
    pass one ``max_prompt_tokens`` to train and test envs to give them one shape.

    ## Starting State
    A problem drawn uniformly with the env's seeded RNG (or
    ``reset(options={"problem": i})``); nothing generated yet. To evaluate on a
    whole split, every problem once: ``reset(options={"problem": i})`` for ``i``
    in ``range(task.num_problems)``, or batched, ``task.prompt_batches(n)``
    (``task.all_prompts()``) -- not draws, which repeat problems.

    ## Rewards
    1.0 when the episode ends (by a stop token or truncation) and the final answer
    extracted from the generated text up to its first stop token equals the gold
    answer; 0.0 otherwise and at every other step. ``answer_format="####"``: the
    number on the last ``#### n`` line, else the last ``\\boxed{n}``, else the last
    number unless ``strict_answer``; compared exactly. ``"boxed"``: the last
    ``\\boxed{...}`` (nested braces), else the last number unless
    ``strict_answer``; compared within 1e-5 (the authors' evaluation).

    ## Episode End
    Terminated when a stop token is written. Truncated after ``max_new_tokens``
    tokens without one. Stepping after the end raises; call ``reset()``.

    ## Information
    - ``step`` (int): tokens generated so far.
    - ``problem`` (int): index of the problem in ``env.unwrapped.task.problems``.
    - ``on_reference_path`` (bool): the output so far is a prefix of the
      reference solution + EOS (no error yet).
    - At the end also: ``text`` (str, output up to EOS), ``answer`` (str or
      None, the extracted final answer), ``gold`` (str, the normalised gold
      answer), ``full_exact`` (bool, output == reference + EOS), ``final_exact``
      (bool, the reward), ``correct_prefix_len`` (int, tokens on the reference
      path), ``num_errors`` (int, tokens differing from the reference teacher's
      token given the output as written), ``length`` (int, tokens incl. EOS).

    ## Arguments
    - ``problem`` (Problem, default None): serve this problem
      (:func:`noisy_expert_gym.make_problem`: its task core and experts, built once)
      instead of building one from the keyword arguments below.
    - ``data_dir`` (str, default None): GSM-8K JSONL directory (``train.jsonl``,
      ``test.jsonl``) or one ``.jsonl`` file; None: ``$NEG_GSM8K_DIR``, else the
      Hugging Face hub ``openai/gsm8k`` (needs ``datasets``). For TinyGSM: its
      parquet / JSONL files; None: ``$NEG_TINYGSM_DIR``, else the hub ``TinyGSM/TinyGSM``.
    - ``dataset`` (str, default ``"gsm8k"``): ``gsm8k`` or ``tinygsm`` (the paper's
      training prompts; ``train`` only; gold answers and reference solutions as
      :mod:`noisy_expert_gym.tasks.gsm8k.data` describes).
    - ``limit`` (int, default None): read only the first ``limit`` problems of the split.
    - ``split`` (str, default ``"train"``): ``train`` or ``test``.
    - ``problems`` (list, default None): explicit problems (``WordProblem`` or dicts
      with ``question``/``answer``) instead of a split.
    - ``subset`` (int, default None): keep this many problems (drawn with ``seed``).
    - ``seed`` (int, default 0): seed of the subset draw (not of episodes).
    - ``expert`` (str, default ``"reference"``): ``reference`` or ``hf:<name or path>``.
    - ``eta`` (float, default 0.01): noise level of the reference expert, in [0, 1].
      Solutions are ~220 tokens long: under ``absorbing`` only ~(1 - eta)^220 of
      the noisy expert's rollouts stay clean (about 11% at 0.01).
    - ``law`` (str, default None: ``absorbing`` for the reference expert,
      ``temperature`` for an LM teacher).
    - ``t`` (float, default 1.0): LM teacher sampling temperature.
    - ``max_new_tokens`` (int, default 1280): the horizon H; the default fits every
      GSM-8K reference solution + EOS with both built-in tokenizers.
    - ``max_prompt_tokens`` (int, default None): the prompt length P (SEP included).
    - ``overflow`` (str, default ``"drop"``): problems whose prompt exceeds P or whose
      reference solution + EOS exceeds H are dropped (``drop``) or raise (``error``).
    - ``tokenizer`` (default None: ``char``, or the LM teacher's): ``char``, ``byte``,
      ``hf:<name>`` or a transformers tokenizer (the student's: with an LM teacher it
      must share the teacher's vocabulary, else ValueError; with the reference
      teacher it is the teacher's vocabulary too).
    - ``answer_format`` (str, default ``"####"``): ``####`` or ``boxed`` (the paper
      authors': step-by-step reasoning, final answer in ``\\boxed{}``): the
      reference solution's last line, the default system prompt, answer
      extraction and comparison.
    - ``strip_annotations`` (bool, default True): drop ``<<48/2=24>>`` from the teacher text.
    - ``uniform_over`` (str, default ``"text"``): noise support, ``text``, ``digits``, ``all``.
    - ``strict_answer`` (bool, default False): only ``#### n`` / ``\\boxed{n}`` count.
    - ``system_prompt`` (str, default None: the answer format's), ``chat_template``
      (bool or None): the prompt of an HF tokenizer.
    - ``stop_on`` (str, default ``"turn"``): an HF tokenizer's stop tokens, all of
      the above (``turn``) or its EOS only (``eos``, v0's); ``stop_tokens`` (ids or
      token strings, default ()): more stop tokens, with any tokenizer (a built-in one
      takes action ids or single characters): each ends an episode as EOS does.
    - ``device``, ``torch_dtype``, ``max_batch``: LM teacher options.
    - ``access`` (str, default ``"full"``), ``top_k`` (int, default None),
      ``logit_noise`` (float, default 0.0), ``logit_noise_dist`` (str, default
      ``"gaussian"``): the reference teacher's access mode (``full``, ``topk`` with
      ``top_k``, ``sample``) and per-query logit noise, as NoisyModAdd's; an LM
      teacher takes the defaults only.
    - ``render_mode``: None or ``"ansi"``.

    ## Version History
    - v1: an HF tokenizer stops at every end-of-turn token of its chat template
      (and its model's generation-config EOS ids, and the usual end markers), not
      only at its EOS; rollouts, loss masks, metrics and answer extraction stop at
      the first; ``eos_token`` is the end-of-turn token. HF text is decoded without
      clean-up of spaces. New options (defaults keep v0's behaviour otherwise):
      ``answer_format``, ``dataset``/``limit`` (TinyGSM), ``stop_tokens``; the
      reference teacher accepts HF tokenizers. Identical to v0 with the built-in
      tokenizers. Since (same id: episodes change only where these options are given):
      ``stop_tokens`` applies to the built-in tokenizers too (it was accepted and ignored
      there), and a stop token outside the vocabulary is refused; an option that cannot act
      with the chosen teacher, tokenizer or data (``t``, ``device``, ``torch_dtype``,
      ``max_batch`` without an LM teacher, ``eta`` with one, ``system_prompt`` and
      ``chat_template`` with a built-in tokenizer, ``seed`` without ``subset``, ``data_dir``,
      ``split``, ``dataset``, ``limit`` with ``problems``) is refused.
    - v0: initial release. Still registered: v1 with ``stop_on="eos"``.
    - v1 and v0 (no change for existing kwargs; their outputs are bit-identical):
      kwargs ``access``, ``top_k``, ``logit_noise``, ``logit_noise_dist`` for the
      reference teacher (off by default). No version bump: new optional kwargs
      with behaviour-preserving defaults.
    - v0 (same MDP, rewards and oracle): ``eta`` given a string, None or a boolean is
      refused as not a number (``eta=True`` was read as 1).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": RENDER_MODES, "render_fps": 4}

    def __init__(self, problem: Problem | None = None, *, render_mode: str | None = None,
                 **problem_kwargs: Any) -> None:
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(f"unknown `render_mode` `{render_mode}`; valid values: None, "
                             f"{', '.join(RENDER_MODES)}.{did_you_mean(render_mode, RENDER_MODES)}")
        problem = env_problem(ENV_ID, problem, problem_kwargs)
        # The oracles draw from the env's np_random, re-read on each call so reseeding works.
        self.problem = problem.with_rng(RngOf(self, "np_random"))
        self.task: GSM8KTask = problem.task
        self.expert, self.clean_expert = self.problem.expert, self.problem.clean_expert
        self.render_mode = render_mode
        task = self.task
        self.observation_space = spaces.Box(0, task.vocab_size - 1, shape=(task.obs_len,), dtype=np.int64)
        self.action_space = spaces.Discrete(task.num_actions)
        self._eos = set(task.tokenizer.eos_tokens)
        self._obs: np.ndarray | None = None
        self._problem = 0
        self._ref: list[int] = []
        self._t = 0
        self._on_path = True
        self._done = True

    law = problem_attribute("law", lambda self: self.expert.law)
    eta = problem_attribute("eta", lambda self: self.expert.eta)
    split = problem_attribute("split", lambda self: self.problem.kwargs["split"])
    stop_on = problem_attribute("stop_on", lambda self: self.problem.kwargs["stop_on"])
    answer_format = problem_attribute("answer_format", lambda self: self.problem.kwargs["answer_format"])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        task = self.task
        if options is not None and options.get("problem") is not None:
            i = options["problem"]
            if not isinstance(i, (int, np.integer)) or not 0 <= i < task.num_problems:
                raise ValueError(f"options['problem'] must be an index in 0..{task.num_problems - 1}, got {i!r}")
            prompt = task.prompts_for(np.array([i]))
        else:
            prompt = task.sample_prompts(self.np_random, 1)
        self._problem = int(task.problem_index(prompt)[0])
        self._ref = task.reference_tokens(self._problem)
        self._obs = task.observe(prompt, np.empty((1, 0), np.int64))[0]
        self._t, self._on_path, self._done = 0, True, False
        return self._obs.copy(), {"step": 0, "problem": self._problem, "on_reference_path": True}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("the episode has ended (EOS or max_new_tokens); call reset() first")
        a = check_action(action, self.task.num_actions)
        t = self._t
        self._obs[self.task.prompt_len + t] = a
        self._on_path = self._on_path and t < len(self._ref) and a == self._ref[t]
        self._t = t + 1
        terminated = a in self._eos
        truncated = not terminated and self._t == self.task.horizon
        info: dict[str, Any] = {"step": self._t, "problem": self._problem, "on_reference_path": self._on_path}
        reward = 0.0
        if terminated or truncated:
            self._done = True
            info.update(self.episode_metrics())
            reward = float(info["final_exact"])
        return self._obs.copy(), reward, terminated, truncated, info

    def episode_metrics(self) -> dict[str, Any]:
        """Clean metrics of the output so far, with its text, answer and gold (see Information)."""
        task = self.task
        prompt, gen = self._obs[None, : task.prompt_len], self._obs[None, task.prompt_len:]
        out: dict[str, Any] = {k: v[0].item() for k, v in task.metrics(prompt, gen).items() if k in _METRIC_KEYS}
        text = task.texts(gen)[0]
        out.update(text=text, answer=task.answers(gen)[0], gold=task.golds[self._problem])
        return out

    def render(self) -> str | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi'")
            return None
        if self._obs is None:
            raise RuntimeError("call reset() before render()")
        task = self.task
        gen = self._obs[task.prompt_len: task.prompt_len + self._t]
        n = min(len(gen), len(self._ref))
        same = gen[:n] == np.asarray(self._ref[:n], np.int64)
        d = n if same.all() else int(same.argmin())  # tokens on the reference path
        tok = task.tokenizer
        good, bad = tok.decode(gen[:d]), tok.decode(gen[d:])
        end = " <eos>" if self._t and int(gen[-1]) in self._eos else ""
        question = task.problems[self._problem].question.strip()
        return (f"Q: {question}\nA: {_GREEN}{good}{_RESET}{_RED}{bad}{_RESET}{end}\n"
                f"[{self._t}/{task.horizon} tokens, gold {task.golds[self._problem]}]\n")

    def close(self) -> None:
        pass


