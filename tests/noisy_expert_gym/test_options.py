"""Every env option is honoured or refused, never accepted and ignored (trl#6357, mlx-vlm#244).

The table below lists every keyword argument a registered env family takes (its declared
kwargs and its env-only options; the native vector env's too), each with a value other than
the default, in a context where it matters -- where its effect is observed -- and in the
contexts where it cannot matter, where it must be refused with a ValueError that says what
to do. The effect is observed on a fingerprint of the env: its spaces and task, a seeded
episode driven off the expert's path and then by the expert (observations, rewards, infos,
the expert's rows), the render, and what the task reads off fixed texts. A completeness test
fails when a family gains an option the table does not cover.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import noisy_expert_gym  # noqa: F401  (registers the envs)
from noisy_expert_gym.oracle import ExpertAccessError
from noisy_expert_gym.problems import FAMILIES
from noisy_expert_gym.tasks.gsm8k import (
    write_example_data,
    write_jsonl,
    write_tinygsm_example,
)

ID = {"modadd": "NoisyModAdd-v0", "automaton": "NoisyAutomaton-v0", "per_step": "NoisyPerStepAutomaton-v0",
      "gsm8k": "NoisyGSM8K-v1"}
GSM_H = 64  # GSM-8K horizon in every case (the default 1,280 is honoured too: see max_new_tokens)
OTHER_PROBLEMS = [{"question": "Ann has 2 boxes of 5 pens. How many pens?", "answer": "2 * 5 = 10\n#### 10"},
                  {"question": "Bo reads 7 pages a day for 3 days. How many pages?", "answer": "7 * 3 = 21\n#### 21"}]


def effect(family: str, option: str, value: Any, context: dict | None = None) -> Any:
    return pytest.param(family, option, value, context or {}, "effect", id=f"{family}-{option}={value!r}-effect")


def refused(family: str, option: str, value: Any, context: dict | None = None) -> Any:
    return pytest.param(family, option, value, context or {}, "refused", id=f"{family}-{option}={value!r}-refused")


HF = {"expert": "hf:{teacher}"}  # an LM teacher (a tiny local GPT-2: no download)
HF_TOK = {"tokenizer": "hf:{teacher}"}  # the reference teacher in the LM's vocabulary
GEMMA_TOK = {"tokenizer": "{gemma}"}  # ... in a vocabulary whose chat template ends turns with <end_of_turn>
CHAIN_CASES = [
    *[c for fam in ("modadd", "automaton") for c in (
        effect(fam, "m", 5), effect(fam, "eta", 0.5), effect(fam, "law", "mixture"),
        effect(fam, "kappa", 0.5, {"law": "corrupted", "eta": 0.5}), refused(fam, "kappa", 0.5),
        effect(fam, "corruption_seed", 9, {"law": "corrupted", "eta": 0.5}), refused(fam, "corruption_seed", 9),
        effect(fam, "access", "sample"), effect(fam, "reward", "dense"), effect(fam, "render_mode", "ansi"),
        effect(fam, "render_mode", "rgb_array"))],
    # Top-k access and the per-query logit noise (every family's reference expert).
    *[c for fam in ("modadd", "automaton", "per_step", "gsm8k") for c in (
        effect(fam, "top_k", 2, {"access": "topk", "top_k": 3}), refused(fam, "top_k", 2),
        effect(fam, "logit_noise", 1.0, {"eta": 0.5}),
        effect(fam, "logit_noise_dist", "gumbel", {"eta": 0.5, "logit_noise": 1.0}),
        refused(fam, "logit_noise_dist", "gumbel"))],
    refused("gsm8k", "logit_noise", 1.0, HF), refused("gsm8k", "top_k", 2, {**HF, "access": "topk"}),
    effect("gsm8k", "access", "sample"),
    effect("modadd", "p", 5),
    effect("automaton", "automaton", "s5"), effect("automaton", "automaton", "modadd"),
    effect("automaton", "n", 5), refused("automaton", "n", 5, {"automaton": "s5"}),
    effect("automaton", "k", 3), refused("automaton", "k", 3, {"automaton": "modadd"}),
    refused("automaton", "k", 3, {"automaton": "s5"}),
    effect("automaton", "kind", "dfa"), refused("automaton", "kind", "dfa", {"automaton": "s5"}),
    refused("automaton", "kind", "dfa", {"automaton": "modadd"}),
    effect("automaton", "alphabet", "generators", {"automaton": "s5"}), refused("automaton", "alphabet", "generators"),
    effect("automaton", "automaton_seed", 4), refused("automaton", "automaton_seed", 4, {"automaton": "s5"}),
    refused("automaton", "automaton_seed", 4, {"automaton": "modadd"}),
    effect("automaton", "relabel_seed", 4), effect("automaton", "relabel_seed", 4, {"automaton": "s5"}),
    # The per-step rules (defaults m = 5, P = m, n = 3, k = 2, absorbing eta 0.5).
    effect("per_step", "m", 3), effect("per_step", "eta", 0.2), effect("per_step", "law", "mixture"),
    effect("per_step", "kappa", 0.5, {"law": "corrupted"}), refused("per_step", "kappa", 0.5),
    effect("per_step", "corruption_seed", 9, {"law": "corrupted"}), refused("per_step", "corruption_seed", 9),
    effect("per_step", "access", "sample"), effect("per_step", "reward", "dense"),
    effect("per_step", "render_mode", "ansi"), effect("per_step", "render_mode", "rgb_array"),
    effect("per_step", "automaton", "modadd"), effect("per_step", "n", 4), effect("per_step", "k", 3),
    refused("per_step", "k", 2, {"automaton": "modadd"}), effect("per_step", "period", 2),
    refused("per_step", "period", 6), effect("per_step", "automaton_seed", 4), effect("per_step", "relabel_seed", 4),
]
GSM_CASES = [
    effect("gsm8k", "data_dir", "{other}"), effect("gsm8k", "split", "test"),
    effect("gsm8k", "problems", OTHER_PROBLEMS),
    *[refused("gsm8k", k, v, {"problems": OTHER_PROBLEMS})
      for k, v in (("data_dir", "{other}"), ("split", "test"), ("dataset", "tinygsm"), ("limit", 1))],
    effect("gsm8k", "subset", 2), effect("gsm8k", "seed", 3, {"subset": 2}), refused("gsm8k", "seed", 3),
    effect("gsm8k", "expert", "hf:{teacher}"),
    effect("gsm8k", "eta", 0.5), refused("gsm8k", "eta", 0.5, HF),
    effect("gsm8k", "law", "mixture", {"eta": 0.5}), refused("gsm8k", "law", "mixture", HF),
    effect("gsm8k", "t", 4.0, HF), refused("gsm8k", "t", 4.0),
    effect("gsm8k", "max_new_tokens", 80), effect("gsm8k", "max_prompt_tokens", 200),
    effect("gsm8k", "overflow", "error", {"max_new_tokens": 30}),
    effect("gsm8k", "tokenizer", "byte"), effect("gsm8k", "tokenizer", "hf:{teacher}"),
    effect("gsm8k", "strip_annotations", False), effect("gsm8k", "uniform_over", "digits", {"eta": 0.5}),
    effect("gsm8k", "strict_answer", True), effect("gsm8k", "answer_format", "boxed"),
    effect("gsm8k", "system_prompt", "Solve it.", HF_TOK), refused("gsm8k", "system_prompt", "Solve it."),
    effect("gsm8k", "chat_template", False, HF_TOK), refused("gsm8k", "chat_template", False),
    effect("gsm8k", "device", "meta", HF), refused("gsm8k", "device", "cpu"),
    effect("gsm8k", "torch_dtype", "bfloat16", HF), refused("gsm8k", "torch_dtype", "bfloat16"),
    effect("gsm8k", "max_batch", 1, HF), refused("gsm8k", "max_batch", 1),
    effect("gsm8k", "dataset", "tinygsm"), effect("gsm8k", "limit", 2),
    effect("gsm8k", "stop_on", "eos", GEMMA_TOK),
    effect("gsm8k", "stop_tokens", [0]), effect("gsm8k", "stop_tokens", ["\n"]),
    refused("gsm8k", "stop_tokens", [12345]), effect("gsm8k", "stop_tokens", ["\n"], HF_TOK),
    refused("gsm8k", "stop_tokens", [12345], HF_TOK),
    effect("gsm8k", "render_mode", "ansi"),
]
#: Options that cannot have an effect in some context and are still accepted there, with why.
ACCEPTED_WITHOUT_EFFECT = {
    ("gsm8k", "stop_on"): "the built-in tokenizers' only stop token is EOS, which both values stop on "
                          "(NoisyGSM8K-v0 is v1 with stop_on='eos': identical with them)",
}


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("options")
    other = root / "other"
    write_jsonl(other / "train.jsonl", OTHER_PROBLEMS)
    out = {"data": str(write_example_data(root / "gsm8k")), "tiny": str(write_tinygsm_example(root / "tinygsm")),
           "other": str(other)}
    try:
        import transformers  # noqa: F401

        from tests.noisy_expert_gym.test_gsm8k_hf import save_teacher
        from tests.noisy_expert_gym.test_gsm8k_stop_tokens import gemma_tokenizer

        out["teacher"] = str(save_teacher(root / "teacher"))
        out["gemma"] = gemma_tokenizer()
    except ImportError:
        pass
    return out


@pytest.fixture(autouse=True)
def data_env(paths: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEG_GSM8K_DIR", paths["data"])
    monkeypatch.setenv("NEG_TINYGSM_DIR", paths["tiny"])


def _fill(kwargs: dict, paths: dict[str, Any]) -> dict:
    out = {}
    for k, v in kwargs.items():
        if isinstance(v, str) and "{" in v:
            if ("{teacher}" in v or "{gemma}" in v) and "teacher" not in paths:
                pytest.skip("needs transformers (the tiny local LM teacher)")
            v = paths["gemma"] if v == "{gemma}" else v.format(**paths)
        out[k] = v
    return out


def fingerprint(family: str, kwargs: dict) -> list[Any]:
    """What an env built with `kwargs` shows: spaces, task, a seeded episode (first a step off the expert's
    path, then the expert's samples), the expert's rows along it, renders and readings of fixed texts."""
    if family == "gsm8k":
        kwargs = {"max_new_tokens": GSM_H, **kwargs}
    env = gym.make(ID[family], **kwargs)
    u = env.unwrapped
    task, expert = u.task, u.expert
    out: list[Any] = [repr(task), env.observation_space, env.action_space, getattr(task, "eos_tokens", None),
                      repr(expert), getattr(expert, "max_batch", None), str(getattr(expert, "device", None))]
    try:
        return out + _episode(env, family)
    except (RuntimeError, NotImplementedError) as e:  # e.g. a teacher on the "meta" device computes nothing
        return [*out, f"{type(e).__name__} in the episode"]


def _episode(env: gym.Env, family: str) -> list[Any]:
    u = env.unwrapped
    task, expert = u.task, u.expert
    out: list[Any] = []
    obs, info = env.reset(seed=0)
    out += [obs.tolist(), repr(info)]
    rng = np.random.default_rng(0)
    for t in range(12):
        try:
            out.append(np.round(np.asarray(expert.probs(obs), np.float64), 6).tolist())
        except ExpertAccessError as e:
            out.append(f"sample-only: {type(e).__name__}")
        action = int(rng.integers(task.num_actions)) if t == 1 else int(expert.sample(obs))
        obs, reward, term, trunc, info = env.step(action)
        out += [obs.tolist(), reward, term, trunc, repr(info)]
        if u.render_mode is not None:
            frame = env.render()
            out.append(frame if isinstance(frame, str) else np.asarray(frame).tobytes())
        if term or trunc:
            obs, info = env.reset()
    if family == "gsm8k":
        texts = ["The answer is 8.", "#### 8", "\\boxed{8}"]
        chains = np.full((3, task.horizon), task.eos_token, np.int64)
        for i, text in enumerate(texts):
            ids = task.tokenizer.encode(text)[: task.horizon]
            chains[i, : len(ids)] = ids
        out += [task.answers(chains), task.problems[0].question,
                task.texts(task.clean_chains(task.all_prompts()))]  # the reference texts
    return out


@pytest.mark.parametrize(("family", "option", "value", "context", "expect"), CHAIN_CASES + GSM_CASES)
def test_an_option_is_honoured_or_refused(family, option, value, context, expect, paths):
    """`device="meta"` stands for any device but the CPU (the only one here, which is also the default's)."""
    context = _fill(context, paths)
    given = _fill({option: value}, paths)
    if expect == "refused":
        with pytest.raises(ValueError, match=f"`?{option}`?"):
            fingerprint(family, {**context, **given})
        return
    base = fingerprint(family, context)
    try:
        changed = fingerprint(family, {**context, **given})
    except ValueError:  # refusing where the value cannot apply is an effect too (e.g. overflow='error')
        return
    assert changed != base, f"{option}={value!r} was accepted and changed nothing"


def test_options_accepted_without_effect_are_the_documented_equivalences(paths):
    for (family, option) in ACCEPTED_WITHOUT_EFFECT:
        assert fingerprint(family, {option: "eos"}) == fingerprint(family, {})


def test_every_option_of_every_family_is_in_the_table():
    covered: dict[str, set[str]] = {}
    for case in CHAIN_CASES + GSM_CASES:
        family, option = case.values[:2]
        covered.setdefault(family, set()).add(option)
    for name, fam in FAMILIES.items():
        options = set(fam.kwargs.model_fields) | set(fam.env_options)
        assert options <= covered[name], f"{name}: no case for {sorted(options - covered[name])}"


# ----- the native vector env's own options -------------------------------------------------------------
def _vec_trace(**kwargs: Any) -> list[Any]:
    vec = gym.make_vec("NoisyModAdd-m3-v0", num_envs=2, vectorization_mode="vector_entry_point", **kwargs)
    vec.reset(seed=0)
    out = []
    for _ in range(5):
        obs, rew, term, trunc, _ = vec.step(np.array([1, 2]))
        out.append((obs.tolist(), rew.tolist(), term.tolist(), trunc.tolist()))
    obs, _ = vec.reset()
    return [*out, np.asarray(vec.expert.probs(obs)).tolist()]


@pytest.mark.parametrize(("option", "value"), [("max_episode_steps", 2), ("autoreset_mode", "SameStep"),
                                               ("reward", "dense"), ("eta", 0.5)])
def test_a_vector_env_option_is_honoured(option: str, value: Any) -> None:
    assert _vec_trace(**{option: value}) != _vec_trace()

