"""Benchmark of NoisyGSM8K's reference teacher and env: ``python -m benchmarks.gsm8k_speed``.

Prints, measured in one run on the GSM-8K data (``--data-dir``, else
``$NEG_GSM8K_DIR``, else ``../shared/data/gsm8k`` beside the repository):

- reference-teacher prefix queries/s: ``probs_along`` over a batch of complete
  chains (clean reference chains and the noisy expert's own rollouts; numpy and
  torch), the oracle alone (``clean_along``), single-prefix ``probs`` on batches
  and one prefix at a time, and the noisy expert's ``rollout``;
- env steps/s: replaying reference solutions, and with the noisy expert
  choosing each action (one ``sample`` query per step);
- with ``--hf-vocab N`` (default 4096; 0 skips it): the same reference teacher in a
  Hugging Face vocabulary -- a byte-level BPE of N tokens trained here on the
  split's text (no download) -- its task build time and ``probs_along`` /
  ``clean_along`` rates on reference and noisy chains (the text oracle).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _rate(fn: Callable[[], Any], work: int, repeats: int) -> float:
    """Best-of-`repeats` units of `work` per second."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return work / best


def main(argv: list[str] | None = None) -> None:
    from noisy_expert_gym import make_problem
    from noisy_expert_gym.tasks.gsm8k.reference import ReferenceExpert

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=os.environ.get("NEG_GSM8K_DIR") or str(REPO.parent / "shared/data/gsm8k"),
                    help="GSM-8K JSONL directory")
    ap.add_argument("--split", default="train", help="train or test")
    ap.add_argument("--batch", type=int, default=64, help="chains / prefixes per batched query")
    ap.add_argument("--eta", type=float, default=0.01, help="noise level of the absorbing law")
    ap.add_argument("--episodes", type=int, default=20, help="env episodes per measurement")
    ap.add_argument("--repeats", type=int, default=3, help="best of this many timings")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--env-id", default="NoisyGSM8K-v1", help="registered NoisyGSM8K id")
    ap.add_argument("--answer-format", default="####", help="#### or boxed")
    ap.add_argument("--hf-vocab", type=int, default=4096,
                    help="vocabulary of the locally trained byte-level BPE for the HF-tokenizer rows (0: skip)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    problem = make_problem(args.env_id, data_dir=args.data_dir, split=args.split, eta=args.eta,
                           answer_format=args.answer_format)
    load_s = time.perf_counter() - t0
    env = problem.make_env()  # the env steps over the same problem (nothing is loaded twice)
    u = env.unwrapped
    task = problem.task
    n, h, r = args.batch, task.horizon, args.repeats
    print(f"{args.env_id} {args.split}: {task.num_problems} problems, P={task.prompt_len}, H={h}, "
          f"A={task.num_actions}, absorbing eta={args.eta}; loaded in {load_s:.2f} s")

    rng = np.random.default_rng(0)
    prompts = task.sample_prompts(rng, n)
    clean_chains = task.clean_chains(prompts)
    expert = ReferenceExpert(task, law="absorbing", eta=args.eta, rng=np.random.default_rng(1))
    noisy_chains = expert.rollout(prompts)
    rows: list[tuple[str, float, str]] = []

    def add(name: str, rate: float, unit: str = "prefix queries/s") -> float:
        rows.append((name, rate, unit))
        return rate

    def fresh(f: Callable[[], Any]) -> Callable[[], Any]:
        return _uncached(task, f)

    along = add(f"probs_along, {n} reference chains (numpy)",
                _rate(fresh(lambda: expert.probs_along(prompts, clean_chains)), n * h, r))
    add(f"probs_along, {n} noisy-expert chains (numpy)",
        _rate(fresh(lambda: expert.probs_along(prompts, noisy_chains)), n * h, r))
    tp, tc = torch.as_tensor(prompts), torch.as_tensor(noisy_chains)
    add(f"probs_along, {n} noisy-expert chains (torch)", _rate(fresh(lambda: expert.probs_along(tp, tc)), n * h, r))
    add(f"clean_along only (the oracle), {n} noisy chains",
        _rate(fresh(lambda: task.clean_along(prompts, noisy_chains)), n * h, r))
    ref_len = np.array([len(task.reference_tokens(i)) for i in task.problem_index(prompts)])
    t = rng.integers(0, ref_len)  # a random prefix of each reference solution
    gen = np.where(np.arange(h)[None, :] < t[:, None], clean_chains, task.pad_token)
    obs = task.observe(prompts, gen)
    batch_rate = add(f"probs, batch of {n} single prefixes", _rate(fresh(lambda: expert.probs(obs)), n, r))

    def one_at_a_time() -> None:
        for i in range(n):
            expert.probs(obs[i])
    single_rate = add("probs, one prefix per call", _rate(fresh(one_at_a_time), n, r))
    expert.reset_queries()
    t0 = time.perf_counter()
    expert.rollout(prompts[:16])
    add("rollout of the noisy expert, 16 prompts", expert.num_queries / (time.perf_counter() - t0))

    # ----- env steps -------------------------------------------------------------
    solutions = [task.reference_tokens(i) for i in range(task.num_problems)]

    def replay() -> int:
        steps = 0
        for e in range(args.episodes):
            env.reset(seed=e)
            for a in solutions[u._problem]:
                env.step(a)
                steps += 1
        return steps

    t0 = time.perf_counter()
    steps = replay()
    add("env.step, replaying reference solutions", steps / (time.perf_counter() - t0), "steps/s")

    def with_expert() -> int:
        steps, done = 0, False
        for e in range(args.episodes):
            o, _ = env.reset(seed=e)
            done = False
            while not done:
                o, _, term, trunc, _ = env.step(int(u.expert.sample(o)))
                done = term or trunc
                steps += 1
        return steps

    t0 = time.perf_counter()
    steps = with_expert()
    add("env.step + expert.sample per step", steps / (time.perf_counter() - t0), "steps/s")

    if args.hf_vocab:
        _hf_rows(args, add)

    width = max(len(name) for name, _, _ in rows)
    for name, rate, unit in rows:
        print(f"  {name:<{width}}  {rate:>12,.0f} {unit}")
    print(f"ratios: probs_along / one-prefix probs = {along / single_rate:,.0f}x; "
          f"batched / one-prefix probs = {batch_rate / single_rate:,.1f}x")


def _bpe_tokenizer(texts: list[str], vocab: int) -> Any:
    """A byte-level BPE (Llama 3 / GPT-2 style) of `vocab` tokens trained on `texts`, with an
    end-of-turn chat template: a Hugging Face tokenizer without a download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"]
    tk.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab, special_tokens=specials, show_progress=False,
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
                                  extra_special_tokens=["<start_of_turn>", "<end_of_turn>"])
    tok.chat_template = ("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n"
                         "{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}"
                         "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
    return tok


def _uncached(task: Any, f: Callable[[], Any]) -> Callable[[], Any]:
    """`f`, timed without the oracle's one-entry cache (the oracle, not its cache)."""
    def run() -> Any:
        task._cache = None
        return f()
    return run


def _hf_rows(args: argparse.Namespace, add: Callable[..., float]) -> None:
    """The reference teacher with a Hugging Face tokenizer: build time and oracle rates."""
    from noisy_expert_gym.tasks.gsm8k import GSM8KTask, load_problems
    from noisy_expert_gym.tasks.gsm8k.reference import ReferenceExpert

    problems = load_problems(args.split, args.data_dir)
    t0 = time.perf_counter()
    tok = _bpe_tokenizer([p.question + "\n" + p.answer for p in problems], args.hf_vocab)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    task = GSM8KTask(problems, tokenizer=tok, max_new_tokens=768, answer_format=args.answer_format)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    task.tokenizer.token_bytes()
    bytes_s = time.perf_counter() - t0
    n, h, r = args.batch, task.horizon, args.repeats
    print(f"HF byte-level BPE ({task.num_actions} tokens, trained in {train_s:.1f} s): {task.num_problems} problems, "
          f"P={task.prompt_len}, H={h}; task built in {build_s:.2f} s, token bytes in {bytes_s:.2f} s")
    rng = np.random.default_rng(0)
    prompts = task.sample_prompts(rng, n)
    clean_chains = task.clean_chains(prompts)
    expert = ReferenceExpert(task, law="absorbing", eta=args.eta, rng=np.random.default_rng(1))
    t0 = time.perf_counter()
    noisy_chains = expert.rollout(prompts[:16])
    add("HF: rollout of the noisy expert, 16 prompts", expert.num_queries / (time.perf_counter() - t0))
    noisy_chains = np.concatenate([noisy_chains, clean_chains[16:]])
    # Noisy chains of every row: the reference with random edits, so every row leaves the path.
    edit = rng.integers(0, task.num_actions, (n, 4))
    where = rng.integers(0, np.maximum(1, [len(task.reference_tokens(i)) - 1 for i in task.problem_index(prompts)]),
                         (4, n)).T
    edited = clean_chains.copy()
    np.put_along_axis(edited, where, edit, 1)
    def fresh(f: Callable[[], Any]) -> Callable[[], Any]:
        return _uncached(task, f)

    add(f"HF: probs_along, {n} reference chains", _rate(fresh(lambda: expert.probs_along(prompts, clean_chains)),
                                                        n * h, r))
    add(f"HF: probs_along, {n} chains off the path (4 random edits)",
        _rate(fresh(lambda: expert.probs_along(prompts, edited)), n * h, r))
    add(f"HF: clean_along only, {n} chains off the path",
        _rate(fresh(lambda: task.clean_along(prompts, edited)), n * h, r))


if __name__ == "__main__":
    main()
