"""Tests of noisy_expert_gym, and the slow pure-Python reference they check against.

The reference below re-derives docs/design.md §2-§3 one sequence at a time with plain
Python ints and floats, sharing no code with the package: the tests compare the
batched numpy/torch implementation with it, never with the implementation's
own output.

Notation: ``xs`` the m operands, ``ys`` the chain written so far (a list of
ints), ``p`` the modulus.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence

LAW_NAMES = ("absorbing", "mixture", "biased")
CORRUPTION_LAW_NAMES = ("corrupted", "corrupted-absorbing")


def ref_sums(xs: Sequence[int], p: int) -> list[int]:
    """True running sums s_1..s_m."""
    out, s = [], 0
    for x in xs:
        s = (s + int(x)) % p
        out.append(s)
    return out


def ref_clean_next(xs: Sequence[int], ys: Sequence[int], p: int) -> int:
    """The clean expert's next token given the chain as written.

    (y_t + x_{t+1}) mod p, and x_1 on the empty chain.
    """
    t = len(ys)
    if t == 0:
        return int(xs[0]) % p
    return (int(ys[-1]) + int(xs[t])) % p


def ref_has_error(xs: Sequence[int], ys: Sequence[int], p: int) -> bool:
    """Whether any written token differs from the clean expert's token at its position.

    Walks the chain with the clean expert (not with the true sums) so it is an
    independent check of the core's "some y_i != s_i" shortcut.
    """
    return any(int(ys[i]) != ref_clean_next(xs, ys[:i], p) for i in range(len(ys)))


# ----- the corruption laws' secret prefix key, re-derived with Python ints ----------------
# The spec (noisy_expert_gym/noise.py): 32-bit hash h = Mueller's hash32; seed words
# w1 = h(h(seed_lo) ^ seed_hi), w2 = h(w1 ^ 0x27D4EB2F); position weights
# W_i = h((i * 0x9E3779B1 + w1) mod 2^32) | 1; for a prefix whose tokens are
# prompt + chain[:t], total = sum_i ((token_i + 1) W_i mod 2^32) and
# key = h((h((total mod 2^32) ^ w2) + t) mod 2^32).

_M32 = 2**32 - 1


def ref_hash32(x: int) -> int:
    x = (((x >> 16) ^ x) * 0x45D9F3B) & _M32
    x = (((x >> 16) ^ x) * 0x45D9F3B) & _M32
    return (x >> 16) ^ x


def ref_prefix_key(prompt: Sequence[int], ys: Sequence[int], seed: int) -> int:
    """The secret key of the prefix prompt + ys (one prefix, plain ints)."""
    w1 = ref_hash32(ref_hash32(seed & _M32) ^ ((seed >> 32) & _M32))
    w2 = ref_hash32(w1 ^ 0x27D4EB2F)
    tokens = [int(v) for v in prompt] + [int(v) for v in ys]
    total = sum(((tok + 1) * (ref_hash32((i * 0x9E3779B1 + w1) & _M32) | 1)) & _M32
                for i, tok in enumerate(tokens))
    return ref_hash32((ref_hash32((total & _M32) ^ w2) + len(ys)) & _M32)


def ref_wrong(clean: int, key: int, answers: Sequence[int]) -> int:
    """w(s): the (key mod n)-th answer token in increasing id order, skipping the clean one."""
    others = sorted(int(a) for a in answers if int(a) != clean)
    return others[key % len(others)]


def ref_corruption(p: int, xs: Sequence[int], ys: Sequence[int], kappa: float, seed: int) -> list[float]:
    """c(.|s) = (1 - kappa) U + kappa delta(w(s)) for modadd (answers: the p residues)."""
    w = ref_wrong(ref_clean_next(xs, ys, p), ref_prefix_key(list(xs) + [p], ys, seed), range(p))
    return [(1 - kappa) / p + kappa * (a == w) for a in range(p)]


def ref_probs(law: str, eta: float, p: int, xs: Sequence[int], ys: Sequence[int], kappa: float = 1.0,
              seed: int = 0) -> list[float]:
    """pi~(.|s) of docs/design.md §2 for modadd (U uniform on the p residues, slip = clean + 1).

    ``kappa`` and ``seed`` are the corruption laws' concentration and secret seed.
    """
    c = ref_clean_next(xs, ys, p)
    if law in ("corrupted", "corrupted-absorbing"):
        corr = ref_corruption(p, xs, ys, kappa, seed)
        if law == "corrupted-absorbing" and ref_has_error(xs, ys, p):
            return corr
        return [(1 - eta) * (a == c) + eta * corr[a] for a in range(p)]
    if law == "clean":
        return [1.0 if a == c else 0.0 for a in range(p)]
    if law == "mixture" or (law == "absorbing" and not ref_has_error(xs, ys, p)):
        return [(1 - eta) * (a == c) + eta / p for a in range(p)]
    if law == "absorbing":
        return [1.0 / p] * p
    if law == "biased":
        slip = (c + 1) % p
        return [(1 - eta) * (a == c) + eta * (a == slip) for a in range(p)]
    raise ValueError(law)


def ref_metrics(xs: Sequence[int], ys: Sequence[int], p: int) -> dict:
    """Clean metrics of a complete chain."""
    s = ref_sums(xs, p)
    k = 0
    while k < len(ys) and int(ys[k]) == s[k]:
        k += 1
    return {
        "full_exact": [int(y) for y in ys] == s,
        "final_exact": int(ys[-1]) == s[-1],
        "correct_prefix_len": k,
        "num_errors": sum(int(ys[i]) != ref_clean_next(xs, ys[:i], p) for i in range(len(ys))),
    }


def split_obs(obs: Sequence[int], p: int, m: int) -> tuple[list[int], list[int]]:
    """(xs, ys) of one observation x_1..x_m, p, y_1..y_t, pad..."""
    obs = [int(v) for v in obs]
    assert len(obs) == 2 * m + 1 and obs[m] == p
    ys = [v for v in obs[m + 1 :] if v != p + 1]
    return obs[:m], ys


def make_obs(xs: Sequence[int], ys: Sequence[int], p: int, m: int) -> list[int]:
    return [int(v) for v in xs] + [p] + [int(v) for v in ys] + [p + 1] * (m - len(ys))


def random_prefix(rnd: random.Random, p: int, m: int, kind: str | None = None,
                  length: int | None = None) -> tuple[list[int], list[int]]:
    """A prompt and a prefix of length 0..m-1 of one of several kinds.

    kinds: ``clean`` (true sums), ``slip`` (one wrong token, the rest carried
    forward by the clean expert: wrong against the true sums but with a single
    disagreement with the clean expert), ``corrupt`` (true sums with a few
    tokens replaced), ``random`` (uniform tokens).
    """
    xs = [rnd.randrange(p) for _ in range(m)]
    t = rnd.randrange(m) if length is None else length
    kind = kind or rnd.choice(["clean", "slip", "corrupt", "random"])
    s = ref_sums(xs, p)[:t]
    if kind == "clean" or t == 0:
        return xs, s
    if kind == "random":
        return xs, [rnd.randrange(p) for _ in range(t)]
    if kind == "corrupt":
        ys = list(s)
        for _ in range(rnd.randint(1, t)):
            i = rnd.randrange(t)
            ys[i] = (ys[i] + rnd.randrange(1, p)) % p
        return xs, ys
    i = rnd.randrange(t)  # slip
    ys = list(s[:i]) + [(s[i] + rnd.randrange(1, p)) % p]
    while len(ys) < t:
        ys.append(ref_clean_next(xs, ys, p))
    return xs, ys


def enumerate_rollouts(law: str, eta: float, p: int, xs: Sequence[int], **law_kw):
    """Every chain y_1..y_m with its probability under noisy-expert rollouts (brute force).

    ``law_kw``: ``kappa`` / ``seed`` of the corruption laws (:func:`ref_probs`).
    """
    m = len(xs)
    for ys in itertools.product(range(p), repeat=m):
        prob = 1.0
        for t in range(m):
            prob *= ref_probs(law, eta, p, xs, ys[:t], **law_kw)[ys[t]]
            if prob == 0.0:
                break
        if prob > 0.0:
            yield list(ys), prob


def z_bound(values: Sequence[float], expected: float, z: float = 4.5) -> tuple[bool, str]:
    """|mean - expected| <= z * sd / sqrt(n) (z = 4.5: two-sided alpha ~ 7e-6 under the CLT)."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / max(n - 1, 1)
    tol = z * math.sqrt(var / n) + 1e-12
    return abs(mean - expected) <= tol, f"mean {mean:.5f} vs {expected:.5f} (tol {tol:.5f}, n={n})"


# ----------------------------------------------------------------------------- state tracking
# The same definitions for an automaton, one sequence at a time. An automaton is given as
# plain Python data: ``table[s][x]`` = delta(s, x), the start state and the biased law's slip.


class RefAutomaton:
    """Plain-Python automaton: a list-of-lists table, a start state and a slip list."""

    def __init__(self, table, start, slip):
        self.table = [[int(v) for v in row] for row in table]
        self.start = int(start)
        self.slip = [int(v) for v in slip]
        self.n = len(self.table)
        self.k = len(self.table[0])

    @classmethod
    def of(cls, automaton) -> RefAutomaton:
        """The reference view of an implementation's Automaton (its data, none of its code)."""
        return cls(automaton.table.tolist(), automaton.start, automaton.slip.tolist())


def ref_modadd_automaton(p: int) -> RefAutomaton:
    return RefAutomaton([[(s + x) % p for x in range(p)] for s in range(p)], 0, [(c + 1) % p for c in range(p)])


def ref_s5_automaton(alphabet: str = "all") -> RefAutomaton:
    """S5 from permutation tuples: state = arrangement, symbol g maps it to s o g ((s o g)[i] = s[g[i]])."""
    perms = list(itertools.permutations(range(5)))
    index = {q: i for i, q in enumerate(perms)}
    gens = perms if alphabet == "all" else [(1, 0, 2, 3, 4), (1, 2, 3, 4, 0)]
    table = [[index[tuple(s[g[i]] for i in range(5))] for g in gens] for s in perms]
    return RefAutomaton(table, index[(0, 1, 2, 3, 4)], [(c + 1) % 120 for c in range(120)])


def ref_run(auto: RefAutomaton, xs: Sequence[int]) -> list[int]:
    """The true run s_1..s_m."""
    out, s = [], auto.start
    for x in xs:
        s = auto.table[s][int(x)]
        out.append(s)
    return out


def ref_auto_clean_next(auto: RefAutomaton, xs: Sequence[int], ys: Sequence[int]) -> int:
    """delta(y_t, x_{t+1}) given the chain as written (delta(start, x_1) on the empty chain)."""
    prev = auto.start if len(ys) == 0 else int(ys[-1])
    return auto.table[prev][int(xs[len(ys)])]


def ref_auto_has_error(auto: RefAutomaton, xs: Sequence[int], ys: Sequence[int]) -> bool:
    """Walks the chain with the clean expert (not with the true run)."""
    return any(int(ys[i]) != ref_auto_clean_next(auto, xs, ys[:i]) for i in range(len(ys)))


def ref_law_row(law: str, eta: float, n: int, clean: int, had_error: bool, slip: Sequence[int]) -> list[float]:
    """pi~(.|s) of docs/design.md §2 over n actions with clean token `clean` (U uniform on the n actions;
    `had_error`: the prefix left the clean expert's path; `slip`: the biased law's wrong token per token)."""
    if law == "clean":
        return [1.0 if a == clean else 0.0 for a in range(n)]
    if law == "mixture" or (law == "absorbing" and not had_error):
        return [(1 - eta) * (a == clean) + eta / n for a in range(n)]
    if law == "absorbing":
        return [1.0 / n] * n
    if law == "biased":
        return [(1 - eta) * (a == clean) + eta * (a == slip[clean]) for a in range(n)]
    raise ValueError(law)


def ref_chain_metrics(true_run: Sequence[int], ys: Sequence[int], clean_next) -> dict:
    """The chain metrics of `ys` against the true run; errors counted against ``clean_next(ys[:i])``."""
    s, k = list(true_run), 0
    while k < len(ys) and int(ys[k]) == s[k]:
        k += 1
    return {
        "full_exact": [int(y) for y in ys] == s,
        "final_exact": int(ys[-1]) == s[-1],
        "correct_prefix_len": k,
        "num_errors": sum(int(ys[i]) != clean_next(ys[:i]) for i in range(len(ys))),
    }


def ref_auto_probs(law: str, eta: float, auto: RefAutomaton, xs: Sequence[int], ys: Sequence[int]) -> list[float]:
    """pi~(.|s) of docs/design.md §2 for an automaton (U uniform on the n states)."""
    return ref_law_row(law, eta, auto.n, ref_auto_clean_next(auto, xs, ys), ref_auto_has_error(auto, xs, ys),
                       auto.slip)


def ref_auto_metrics(auto: RefAutomaton, xs: Sequence[int], ys: Sequence[int]) -> dict:
    return ref_chain_metrics(ref_run(auto, xs), ys, lambda prefix: ref_auto_clean_next(auto, xs, prefix))


def ref_auto_obs(auto: RefAutomaton, xs: Sequence[int], ys: Sequence[int], m: int) -> list[int]:
    sep = max(auto.n, auto.k)
    return [int(v) for v in xs] + [sep] + [int(v) for v in ys] + [sep + 1] * (m - len(ys))


def ref_auto_split(auto: RefAutomaton, obs: Sequence[int], m: int) -> tuple[list[int], list[int]]:
    obs = [int(v) for v in obs]
    sep = max(auto.n, auto.k)
    assert len(obs) == 2 * m + 1 and obs[m] == sep
    return obs[:m], [v for v in obs[m + 1 :] if v != sep + 1]


def random_auto_prefix(rnd: random.Random, auto: RefAutomaton, m: int, kind: str | None = None,
                       length: int | None = None) -> tuple[list[int], list[int]]:
    """A prompt and a prefix (length 0..m-1 unless given) of kind clean / slip / corrupt / random."""
    n = auto.n
    xs = [rnd.randrange(auto.k) for _ in range(m)]
    t = rnd.randrange(m) if length is None else length
    kind = kind or rnd.choice(["clean", "slip", "corrupt", "random"])
    s = ref_run(auto, xs)[:t]
    if kind == "clean" or t == 0:
        return xs, s
    if kind == "random":
        return xs, [rnd.randrange(n) for _ in range(t)]
    if kind == "corrupt":
        ys = list(s)
        for _ in range(rnd.randint(1, t)):
            i = rnd.randrange(t)
            ys[i] = (ys[i] + rnd.randrange(1, n)) % n
        return xs, ys
    i = rnd.randrange(t)  # slip: one wrong token, carried forward by the clean expert
    ys = list(s[:i]) + [(s[i] + rnd.randrange(1, n)) % n]
    while len(ys) < t:
        ys.append(ref_auto_clean_next(auto, xs, ys))
    return xs, ys


def enumerate_auto_rollouts(law: str, eta: float, auto: RefAutomaton, xs: Sequence[int]):
    """Every chain with its probability under noisy-expert rollouts from prompt xs (brute force).

    Walks the tree of all outcomes depth first, so each prefix's distribution is computed once.
    """
    m = len(xs)

    def walk(ys: list[int], prob: float):
        if len(ys) == m:
            yield list(ys), prob
            return
        for a, pa in enumerate(ref_auto_probs(law, eta, auto, xs, ys)):
            if pa > 0.0:
                yield from walk(ys + [a], prob * pa)

    yield from walk([], 1.0)


def ref_majority_prob(probs: Sequence[float], k: int, clean: int, ties: str) -> float:
    """P(the majority of k i.i.d. draws from `probs` is `clean`), by enumerating all A^k outcomes.

    ties ``random``: a tie among T tokens goes to each with probability 1/T; ``lowest``: to the lowest id.
    """
    a = len(probs)
    total = 0.0
    for seq in itertools.product(range(a), repeat=k):
        prob = math.prod(probs[s] for s in seq)
        if prob == 0.0:
            continue
        counts = [seq.count(t) for t in range(a)]
        tied = [t for t in range(a) if counts[t] == max(counts)]
        total += prob * ((clean in tied) / len(tied) if ties == "random" else float(min(tied) == clean))
    return total


def ref_majority(samples: Sequence[int], ties: str, rnd: random.Random | None = None) -> int:
    """The majority vote of one prefix's samples (``random`` ties drawn with `rnd`)."""
    counts: dict[int, int] = {}
    for s in samples:
        counts[int(s)] = counts.get(int(s), 0) + 1
    best = max(counts.values())
    tied = sorted(t for t, c in counts.items() if c == best)
    return tied[0] if ties == "lowest" else (rnd or random.Random()).choice(tied)


# ----------------------------------------------------------------------------- per-step rules
# docs/design.md §3.4: position t (0-based) applies rule block t mod P; symbol j of block b is written
# as token ``tokens[b][j]`` and acts on the states as ``rules[b][j]`` (a list: state -> next state).
# Nothing here knows the implementation's "ordinary automaton over P k tokens" view.


class RefPerStep:
    """Plain-Python per-step automaton: P blocks of k rules (state lists) and their tokens."""

    def __init__(self, rules, tokens, start=0, slip=None):
        self.rules = [[[int(v) for v in r] for r in block] for block in rules]
        self.tokens = [[int(v) for v in row] for row in tokens]
        self.period = len(self.rules)
        self.n = len(self.rules[0][0])
        self.k = len(self.rules[0])
        self.start = int(start)
        self.slip = [(c + 1) % self.n for c in range(self.n)] if slip is None else [int(v) for v in slip]
        self.num_tokens = self.period * self.k

    @classmethod
    def of(cls, task) -> RefPerStep:
        """The reference view of an implementation's per-step task (its data, none of its code)."""
        table, tokens = task.automaton.table.tolist(), task.block_tokens.tolist()
        rules = [[[row[x] for row in table] for x in block] for block in tokens]
        return cls(rules, tokens, task.automaton.start, task.automaton.slip.tolist())


def ref_numpy_rng(seed: int, purpose: int):
    """numpy's generator for (seed, purpose): the stream the definition draws from (docs/design.md §3.4)."""
    import numpy as np

    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(purpose,)))


def ref_random_blocks(n: int, k: int, period: int, seed: int) -> RefPerStep:
    """Blocks of k distinct random permutations, drawn in order (a repeat is drawn again)."""
    rng = ref_numpy_rng(seed, 0)
    rules = []
    for _ in range(period):
        block: list[list[int]] = []
        while len(block) < k:
            perm = [int(v) for v in rng.permutation(n)]
            if perm not in block:
                block.append(perm)
        rules.append(block)
    return RefPerStep(rules, [[b * k + j for j in range(k)] for b in range(period)])


def ref_modadd_blocks(p: int, period: int, seed: int) -> RefPerStep:
    """Symbol j of block b adds sigma_b(j) mod p; sigma_0 = identity, the others drawn in order."""
    rng = ref_numpy_rng(seed, 3)
    sigmas = [list(range(p))] + [[int(v) for v in rng.permutation(p)] for _ in range(period - 1)]
    rules = [[[(s + sig[j]) % p for s in range(p)] for j in range(p)] for sig in sigmas]
    return RefPerStep(rules, [[b * p + j for j in range(p)] for b in range(period)])


def ref_ps_rule(auto: RefPerStep, t: int, x: int) -> list[int]:
    """The rule position t applies for symbol token x (x must be one of its block's tokens)."""
    b = t % auto.period
    return auto.rules[b][auto.tokens[b].index(int(x))]


def ref_ps_run(auto: RefPerStep, xs: Sequence[int]) -> list[int]:
    out, s = [], auto.start
    for t, x in enumerate(xs):
        s = ref_ps_rule(auto, t, x)[s]
        out.append(s)
    return out


def ref_ps_clean_next(auto: RefPerStep, xs: Sequence[int], ys: Sequence[int]) -> int:
    prev = auto.start if len(ys) == 0 else int(ys[-1])
    return ref_ps_rule(auto, len(ys), xs[len(ys)])[prev]


def ref_ps_has_error(auto: RefPerStep, xs: Sequence[int], ys: Sequence[int]) -> bool:
    return any(int(ys[i]) != ref_ps_clean_next(auto, xs, ys[:i]) for i in range(len(ys)))


def ref_ps_probs(law: str, eta: float, auto: RefPerStep, xs: Sequence[int], ys: Sequence[int]) -> list[float]:
    return ref_law_row(law, eta, auto.n, ref_ps_clean_next(auto, xs, ys), ref_ps_has_error(auto, xs, ys), auto.slip)


def ref_ps_metrics(auto: RefPerStep, xs: Sequence[int], ys: Sequence[int]) -> dict:
    return ref_chain_metrics(ref_ps_run(auto, xs), ys, lambda prefix: ref_ps_clean_next(auto, xs, prefix))


def ref_ps_prompts(auto: RefPerStep, m: int):
    """Every prompt of horizon m (each position one of its block's tokens)."""
    return itertools.product(*(auto.tokens[t % auto.period] for t in range(m)))


def ref_ps_final_correct(law: str, eta: float, auto: RefPerStep, m: int) -> float:
    """P(final answer right) of noisy-expert rollouts on uniform prompts: every prompt, every chain."""
    def walk(xs: Sequence[int], s_m: int, ys: list[int], prob: float) -> float:
        if len(ys) == m:
            return prob * (ys[-1] == s_m)
        return sum(walk(xs, s_m, ys + [a], prob * pa)
                   for a, pa in enumerate(ref_ps_probs(law, eta, auto, xs, ys)) if pa > 0.0)

    total, count = 0.0, 0
    for xs in ref_ps_prompts(auto, m):
        count += 1
        total += walk(xs, ref_ps_run(auto, xs)[-1], [], 1.0)
    return total / count
