"""Minari bridge: expert rollouts of any env with an oracle as a Minari dataset, and back.

The offline data of the paper ("noisy expert trajectories": pi~ rolled out with
its own corrupted tokens fed back, docs/design.md §2) exported through Minari's buffer
API (``EpisodeBuffer`` + ``minari.create_dataset_from_buffers``), so jax, which
Minari's ``DataCollector`` needs, is not. The clean expert's rollouts can be
exported too, flagged ``uses_clean_expert`` in the metadata (reference data
only, never for a leaderboard).

Dataset ids: ``noisy-expert/<env>/<expert>-v0``, e.g.
``noisy-expert/modadd-p7-m31-eta0_2/noisy-v0`` (Minari ids allow no ``.``, so
eta 0.2 is written ``0_2``; a non-default noise law or reward is added to
``<env>``: ``modadd-p7-m9-mixture-eta0_1-dense``, and so is every other problem
keyword argument that differs from the env id's default:
``automaton-eta0_1-automatonseed3-n5``), so two different problems never share a
default id: numbers are written exactly (eta 0.1234567 is ``0_1234567``, not rounded to
six digits), and a value that is not a short word or a number by a hash of it. The metadata carries the env spec (Minari's ``env_spec``) and
``noisy_expert_gym``: the env id, the problem's complete keyword arguments (every one
that defines the MDP and the noise, defaults filled in), env options, task shape,
noise law, eta, expert kind and seed.

A dataset and the env it is used with never silently disagree: :func:`load_chains`
checks the env (family and version), every problem keyword argument that defines the
MDP or the noise and the spaces, and refuses a mismatch with an error naming both
values. A different eta may be used on purpose (``dataset_eta=``, which the
trainer records in the run's config).

Example::

    from noisy_expert_gym.bridges.minari_io import export_minari
    ds = export_minari("NoisyModAdd-v0", {"eta": 0.2}, num_episodes=1000, seed=0)
    ds.spec.dataset_id  # 'noisy-expert/modadd-p7-m31-eta0_2/noisy-v0'
    # then: neg train --algo bc --algo-kw dataset=noisy-expert/modadd-p7-m31-eta0_2/noisy-v0 --budget 1000
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import warnings
from typing import Any

import gymnasium as gym
import numpy as np

from noisy_expert_gym.bridges import require
from noisy_expert_gym.problems import REGISTRY, Problem, family_of, make_problem
from noisy_expert_gym.utils import did_you_mean, exact_number, temporary_beside

NAMESPACE = "noisy-expert"
EXPERTS = ("noisy", "clean")
METADATA_KEY = "noisy_expert_gym"
#: Problem keyword arguments that change how a problem is computed or where it is read from,
#: not its MDP or its noise: recorded with a dataset, left out of its id and its checks.
NOT_DEFINING = frozenset({"access", "top_k", "data_dir", "device", "torch_dtype", "max_batch"})


def _minari() -> Any:
    return require("minari", "minari", "Minari export and loading")


def _num(x: float) -> str:
    """0.2 -> '0_2', 1.0 -> '1', 0.1234567 -> '0_1234567' (exact: :func:`~noisy_expert_gym.utils.exact_number`),
    1e-07 -> '1em07': a number as Minari ids allow it (no dots, signs), one text per number."""
    return exact_number(x).replace(".", "_").replace("-", "m").replace("+", "p")


def _problem(env_id: str, env_kwargs: dict[str, Any] | None) -> Problem:
    """The env's problem (task core and experts; env-only options such as ``reward`` kept)."""
    return make_problem(env_id, **(env_kwargs or {}))


def _plain(v: Any) -> Any:
    """A keyword argument's value as the metadata stores it: itself through JSON, else its repr."""
    try:
        return json.loads(json.dumps(v))
    except (TypeError, ValueError):
        return repr(v)


def _id_value(v: Any) -> str:
    """A value as a Minari id allows it, one text per value: numbers via :func:`_num`, short words of letters
    and digits as they are, anything else (other characters, long, structured) as ``_`` and a hash of it
    (no kept word starts with ``_``, no number either)."""
    if isinstance(v, bool) or v is None:
        return str(v).lower()
    if isinstance(v, (int, float)):
        return _num(v)
    if isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9]{1,24}", v):
        return v
    return "_" + hashlib.sha256(json.dumps(_plain(v), sort_keys=True).encode()).hexdigest()[:10]


def _id_defaults(env_id: str) -> dict[str, Any]:
    """The problem keyword arguments an env id stands for (the family's defaults and the variant's)."""
    return {**family_of(env_id).defaults, **REGISTRY[env_id][1]}


def dataset_id(env_id: str = "NoisyModAdd-v0", env_kwargs: dict[str, Any] | None = None,
               expert: str = "noisy", version: int = 0) -> str:
    """The default Minari id of an env's expert rollouts (see the module docstring)."""
    if expert not in EXPERTS:
        raise ValueError(f"`expert` must be one of {', '.join(EXPERTS)}, got {expert!r}")
    problem = _problem(env_id, env_kwargs)
    task, expert_oracle = problem.task, problem.expert
    if hasattr(task, "p") and hasattr(task, "m"):  # NoisyModAdd
        parts, shown = [f"modadd-p{task.p}-m{task.m}"], {"p", "m"}
    else:
        parts, shown = [gym.spec(env_id).name.lower().removeprefix("noisy")], set()
    law, reward = getattr(expert_oracle, "law", None), problem.env_options.get("reward")
    if law not in (None, "absorbing"):
        parts.append(law)
    parts.append(f"eta{_num(expert_oracle.eta)}")
    defaults = _id_defaults(env_id)
    for k, v in sorted(problem.kwargs.items()):  # every other kwarg that makes this problem another one
        if k not in shown | {"law", "eta"} | NOT_DEFINING and _plain(v) != _plain(defaults.get(k)):
            parts.append(k.replace("_", "") + _id_value(v))
    if reward not in (None, "final"):
        parts.append(reward)
    return f"{NAMESPACE}/{'-'.join(parts)}/{expert}-v{version}"


def expert_rollouts(env_id: str, env_kwargs: dict[str, Any] | None, num_episodes: int, seed: int,
                    clean: bool = False) -> list[dict[str, np.ndarray]]:
    """Step the env with its expert's sampled actions: one dict per episode.

    Each episode: ``observations`` (T+1, L), ``actions`` (T,), ``rewards`` (T,),
    ``terminations`` / ``truncations`` (T,). The env is seeded once with
    ``seed`` (its generator then drives prompts and expert draws), so the
    episodes are exactly what ``env.reset(seed=seed)`` and
    the expert's draws from the env's ``np_random`` give, episode after episode.
    """
    if not isinstance(num_episodes, (int, np.integer)) or num_episodes < 1:
        raise ValueError(f"`num_episodes` must be an integer >= 1, got {num_episodes!r}")
    problem = _problem(env_id, env_kwargs)
    env = gym.make(env_id, **(env_kwargs or {}))  # the same problem (cached), and a spec with plain kwargs
    oracles = problem.with_rng(lambda: env.np_random)  # the env's generator: prompts and expert draws
    expert = oracles.clean_expert if clean else oracles.expert
    episodes = []
    obs, _ = env.reset(seed=seed)
    for _ in range(num_episodes):
        observations, actions, rewards, terms, truncs = [obs], [], [], [], []
        done = False
        while not done:
            a = int(expert.sample(obs))
            obs, r, term, trunc, _ = env.step(a)
            observations.append(obs)
            actions.append(a)
            rewards.append(r)
            terms.append(term)
            truncs.append(trunc)
            done = term or trunc
        episodes.append({"observations": np.stack(observations), "actions": np.asarray(actions, np.int64),
                         "rewards": np.asarray(rewards, np.float64), "terminations": np.asarray(terms),
                         "truncations": np.asarray(truncs)})
        obs, _ = env.reset()
    env.close()
    return episodes


def export_minari(env_id: str = "NoisyModAdd-v0", env_kwargs: dict[str, Any] | None = None,
                  num_episodes: int = 1000, seed: int = 0, clean: bool = False, dataset: str | None = None,
                  overwrite: bool = False, data_format: str | None = None, author: str | None = None) -> Any:
    """Export expert rollouts of an env as a Minari dataset (in ``$MINARI_DATASETS_PATH``).

    Args:
        env_id: a registered env id with an expert oracle.
        env_kwargs: env keyword arguments (eta, m, law, reward, ...).
        num_episodes: number of rollouts.
        seed: seeds the env, hence prompts and expert draws.
        clean: export the clean expert's rollouts (flagged ``uses_clean_expert``).
        dataset: the dataset id (default: :func:`dataset_id`).
        overwrite: replace an existing local dataset with that id.
        data_format: Minari storage, ``hdf5`` (default when h5py is installed; fast
            writes) or ``arrow`` (pyarrow).
        author: recorded in the metadata.

    Returns:
        The ``minari.MinariDataset``.
    """
    minari = _minari()
    from minari.data_collector.episode_buffer import EpisodeBuffer

    expert = "clean" if clean else "noisy"
    ds_id = dataset or dataset_id(env_id, env_kwargs, expert)
    if ds_id in minari.list_local_datasets():
        if not overwrite:
            raise ValueError(f"Minari dataset `{ds_id}` already exists; pass overwrite=True "
                             "(--overwrite) or another id")
        minari.delete_dataset(ds_id)
    if data_format is None:
        data_format = _default_format()
    episodes = expert_rollouts(env_id, env_kwargs, num_episodes, seed, clean=clean)
    buffers = [EpisodeBuffer(id=i, observations=e["observations"], actions=e["actions"],
                             rewards=list(e["rewards"]), terminations=list(e["terminations"]),
                             truncations=list(e["truncations"])) for i, e in enumerate(episodes)]
    problem = _problem(env_id, env_kwargs)
    task, noisy = problem.task, problem.expert
    meta = {"env_id": env_id, "env_kwargs": _plain(dict(env_kwargs or {})), "expert": expert,
            "problem_kwargs": {k: _plain(v) for k, v in problem.kwargs.items()},
            "env_options": _plain(dict(problem.env_options)),
            "uses_clean_expert": clean, "noise_law": noisy.law,
            "eta": float(noisy.eta), "seed": int(seed)}
    for k in ("p", "m"):
        if hasattr(task, k):
            meta[k] = int(getattr(task, k))
    meta.update(prompt_len=int(task.prompt_len), horizon=int(task.horizon))
    from noisy_expert_gym import __version__

    meta["version"] = __version__
    desc = (f"{num_episodes} rollouts of the {'clean expert pi*' if clean else 'noisy expert pi~'} of "
            f"{env_id} {dict(env_kwargs or {})} (noise law `{noisy.law}`, eta {noisy.eta}); the expert's tokens "
            "are fed back. Made with noisy-expert-gym.")
    # Minari records the env spec to recover the env: one built from its plain keyword arguments
    # (the problem itself is cached per process, so this builds nothing twice).
    env = gym.make(env_id, **(env_kwargs or {}))
    from minari.storage.datasets_root_dir import get_dataset_path

    final = get_dataset_path(ds_id)
    # Built whole under a temporary root beside the dataset's folder, then renamed into place: a killed
    # export leaves no half-written dataset under its id (and its temporary goes at the next export).
    with temporary_beside(final) as root, _datasets_path(root):
        with warnings.catch_warnings():  # Minari nags about unset author / permalink / eval env
            warnings.filterwarnings("ignore", message=r".*is set to None.*", category=UserWarning)
            ds = minari.create_dataset_from_buffers(
                ds_id, buffers, env=env, algorithm_name=f"{expert}-expert", author=author or "noisy-expert-gym",
                description=desc, data_format=data_format)
        ds.storage.update_metadata({METADATA_KEY: meta})
        del ds
        if final.exists():  # overwrite: an id deleted above but recreated since (another export)
            raise ValueError(f"Minari dataset `{ds_id}` was created by another export meanwhile; retry")
        os.replace(root / ds_id, final)
    env.close()
    return minari.load_dataset(ds_id)


@contextlib.contextmanager
def _datasets_path(root: Any) -> Any:
    """``$MINARI_DATASETS_PATH`` set to `root` for the block (Minari reads it on every call)."""
    before = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = before


def _default_format() -> str:
    try:
        import h5py  # noqa: F401
    except ImportError:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ImportError("Minari export needs a storage backend: pip install "
                              "'noisy-expert-gym[minari]' (installs minari[hdf5])") from None
        return "arrow"
    return "hdf5"


def _family_version(env_id: str) -> tuple[str, str]:
    return family_of(env_id).name, env_id.rpartition("-")[2]


def check_dataset(dataset: str, problem: Problem, dataset_eta: float | None = None, ds: Any = None
                  ) -> dict[str, Any]:
    """Raise unless a local Minari dataset was made on `problem`'s MDP and noise; its metadata.

    Checked: the env (its task family and version: ``NoisyModAdd-m3-v0`` is
    ``NoisyModAdd-v0`` with m = 3), every problem keyword argument that defines the MDP or
    the noise (all of ``problem.kwargs`` but :data:`NOT_DEFINING`) and the observation and
    action spaces. ``dataset_eta``: the dataset's eta when it differs from the env's on
    purpose (otherwise a different eta is refused like any other kwarg).

    Raises:
        ValueError: naming the dataset's value and the env's of everything that differs.
    """
    ds = ds if ds is not None else _load(dataset)
    meta = dict(ds.storage.metadata.get(METADATA_KEY, {}))
    env_id = problem.env_id
    export = (f"export one from it: neg export-minari --env {env_id}"
              + "".join(f" --env-kw {k}={json.dumps(_plain(v))}" for k, v in problem.kwargs.items()
                        if k not in NOT_DEFINING and _plain(v) != _plain(_id_defaults(env_id).get(k))))
    if "env_id" not in meta:
        raise ValueError(f"Minari dataset `{dataset}` carries no {METADATA_KEY} metadata (env id, problem "
                         f"keyword arguments), so nothing says it was made on {env_id}; {export}")
    theirs_id = str(meta["env_id"])
    try:
        same_env = _family_version(theirs_id) == _family_version(env_id)
    except ValueError:  # an env id this version does not know
        same_env = False
    if not same_env:
        raise ValueError(f"Minari dataset `{dataset}` was made on env {theirs_id}, but the run's env is "
                         f"{env_id}; {export}")
    theirs = meta.get("problem_kwargs")
    if theirs is None:  # exported before the complete kwargs were recorded: the given ones + defaults
        from noisy_expert_gym.problems import split_kwargs

        theirs = {k: _plain(v) for k, v in split_kwargs(theirs_id, meta.get("env_kwargs") or {})[0].items()}
    ours = {k: _plain(v) for k, v in problem.kwargs.items()}
    differ = [k for k in sorted(set(ours) | set(theirs)) if k not in NOT_DEFINING
              and ours.get(k) != theirs.get(k) and not (k == "eta" and dataset_eta is not None)]
    if differ:
        what = "; ".join(f"{k} = {theirs.get(k)!r} in the dataset, {ours.get(k)!r} in the env" for k in differ)
        hint = (f", or pass dataset_eta={theirs.get('eta')!r} (--algo-kw dataset_eta={theirs.get('eta')!r}) to "
                "train on it on purpose" if differ == ["eta"] else "")
        raise ValueError(f"Minari dataset `{dataset}` was made on another problem than the run's {env_id}: "
                         f"{what}; {export}{hint}")
    if dataset_eta is not None and _plain(dataset_eta) != theirs.get("eta"):
        raise ValueError(f"Minari dataset `{dataset}` was made at eta = {theirs.get('eta')!r}, not at the "
                         f"dataset_eta = {dataset_eta!r} given; pass dataset_eta={theirs.get('eta')!r}")
    env = problem.make_env()
    try:
        for name, want, got in (("observation", env.observation_space, ds.observation_space),
                                ("action", env.action_space, ds.action_space)):
            if want != got:
                raise ValueError(f"Minari dataset `{dataset}` has the {name} space {got}, but the run's env "
                                 f"{env_id} {dict(problem.kwargs)} has {want}; {export}")
    finally:
        env.close()
    return meta


def _load(dataset: str) -> Any:
    """A local Minari dataset by id (ids only: a path is refused with the way to use its folder)."""
    minari = _minari()
    if dataset.startswith(("/", "./", "../", "~")) or dataset.endswith((".hdf5", ".h5", ".arrow")):
        raise ValueError(f"`{dataset}` is a path; datasets are named by their Minari id "
                         "(namespace/name-vN, e.g. noisy-expert/modadd-p7-m31-eta0_2/noisy-v0), looked up in "
                         "$MINARI_DATASETS_PATH: set it to the folder that holds the dataset")
    if dataset not in minari.list_local_datasets():
        local = list(minari.list_local_datasets())
        raise ValueError(f"no local Minari dataset `{dataset}` (in $MINARI_DATASETS_PATH); export one with "
                         f"`neg export-minari`.{did_you_mean(dataset, local)}")
    return minari.load_dataset(dataset)


def load_chains(dataset: str, problem: Problem, n: int | None = None,
                dataset_eta: float | None = None) -> dict[str, np.ndarray]:
    """Read a Minari dataset of complete chains back as ``{prompts (N, P), chain (N, H)}``.

    Args:
        dataset: a local Minari dataset id (e.g. from :func:`export_minari`).
        problem: the problem the chains are for (``make_problem(env_id, **kwargs)``): the dataset
            must have been made on it (:func:`check_dataset`).
        n: the number of episodes to read (the first n); None reads them all.
        dataset_eta: the dataset's eta when it differs from the problem's on purpose.

    Raises:
        ValueError: the dataset is missing, too small, or made on another env, problem or spaces.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"`problem` must be the Problem the chains are for (make_problem(env_id, **kwargs)), "
                        f"got {type(problem).__name__}")
    ds = _load(dataset)
    check_dataset(dataset, problem, dataset_eta, ds)
    task = problem.task
    total = ds.total_episodes
    n = total if n is None else n
    if n > total:
        raise ValueError(f"Minari dataset `{dataset}` holds {total} episodes, fewer than the {n} asked "
                         "for (the trajectory budget); lower the budget or export more episodes")
    prompts = np.empty((n, task.prompt_len), np.int64)
    chain = np.empty((n, task.horizon), np.int64)
    for i, ep in enumerate(ds.storage.get_episodes(range(n))):
        if len(ep["actions"]) != task.horizon:
            raise ValueError(f"episode {i} of `{dataset}` has {len(ep['actions'])} actions, expected "
                             f"complete chains of {task.horizon}")
        prompts[i] = np.asarray(ep["observations"])[0, : task.prompt_len]
        chain[i] = np.asarray(ep["actions"]).reshape(-1)
    return {"prompts": prompts, "chain": chain}


def dataset_metadata(dataset: str) -> dict[str, Any]:
    """The ``noisy_expert_gym`` metadata of a local Minari dataset (empty if absent)."""
    return dict(_load(dataset).storage.metadata.get(METADATA_KEY, {}))


__all__ = ["EXPERTS", "NAMESPACE", "NOT_DEFINING", "check_dataset", "dataset_id", "dataset_metadata",
           "expert_rollouts", "export_minari", "load_chains"]
