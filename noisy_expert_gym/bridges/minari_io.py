"""Minari bridge: expert rollouts of any env with an oracle as a Minari dataset, and back.

The offline data of the paper ("noisy expert trajectories": pi~ rolled out with
its own corrupted tokens fed back, DESIGN §2) exported through Minari's buffer
API (``EpisodeBuffer`` + ``minari.create_dataset_from_buffers``), so jax, which
Minari's ``DataCollector`` needs, is not. The clean expert's rollouts can be
exported too, flagged ``uses_clean_expert`` in the metadata (reference data
only, never for a leaderboard).

Dataset ids: ``noisy-expert/<env>/<expert>-v0``, e.g.
``noisy-expert/modadd-p7-m31-eta0_2/noisy-v0`` (Minari ids allow no ``.``, so
eta 0.2 is written ``0_2``; a non-default noise law or reward is added to
``<env>``: ``modadd-p7-m9-mixture-eta0_1-dense``). The metadata carries the env
spec (Minari's ``env_spec``) and ``noisy_expert_gym``: env id and kwargs, task
shape, noise law, eta, expert kind and seed.

Example::

    from noisy_expert_gym.bridges.minari_io import export_minari
    ds = export_minari("NoisyModAdd-v0", {"eta": 0.2}, num_episodes=1000, seed=0)
    ds.spec.dataset_id  # 'noisy-expert/modadd-p7-m31-eta0_2/noisy-v0'
    # then: neg train --algo bc --algo-kw dataset=noisy-expert/modadd-p7-m31-eta0_2/noisy-v0 --budget 1000
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np

from noisy_expert_gym._util import did_you_mean
from noisy_expert_gym.bridges import require
from noisy_expert_gym.problems import Problem, make_problem

NAMESPACE = "noisy-expert"
EXPERTS = ("noisy", "clean")
METADATA_KEY = "noisy_expert_gym"


def _minari() -> Any:
    return require("minari", "minari", "Minari export and loading")


def _num(x: float) -> str:
    """0.2 -> '0_2', 1.0 -> '1': a number as Minari ids allow it (no dots)."""
    return f"{float(x):g}".replace(".", "_").replace("-", "m")


def _problem(env_id: str, env_kwargs: dict[str, Any] | None) -> Problem:
    """The env's problem (task core and experts; env-only options such as ``reward`` kept)."""
    return make_problem(env_id, **(env_kwargs or {}))


def dataset_id(env_id: str = "NoisyModAdd-v0", env_kwargs: dict[str, Any] | None = None,
               expert: str = "noisy", version: int = 0) -> str:
    """The default Minari id of an env's expert rollouts (see the module docstring)."""
    if expert not in EXPERTS:
        raise ValueError(f"`expert` must be one of {', '.join(EXPERTS)}, got {expert!r}")
    problem = _problem(env_id, env_kwargs)
    task, expert_oracle = problem.task, problem.expert
    if hasattr(task, "p") and hasattr(task, "m"):  # NoisyModAdd
        parts = [f"modadd-p{task.p}-m{task.m}"]
    else:
        parts = [gym.spec(env_id).name.lower().removeprefix("noisy")]
    law, reward = getattr(expert_oracle, "law", None), problem.env_options.get("reward")
    if law not in (None, "absorbing"):
        parts.append(law)
    parts.append(f"eta{_num(expert_oracle.eta)}")
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
    meta = {"env_id": env_id, "env_kwargs": dict(env_kwargs or {}), "expert": expert,
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
    with warnings.catch_warnings():  # Minari nags about unset author / permalink / eval env
        warnings.filterwarnings("ignore", message=r".*is set to None.*", category=UserWarning)
        ds = minari.create_dataset_from_buffers(
            ds_id, buffers, env=env, algorithm_name=f"{expert}-expert", author=author or "noisy-expert-gym",
            description=desc, data_format=data_format)
    ds.storage.update_metadata({METADATA_KEY: meta})
    env.close()
    return ds


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


def load_chains(dataset: str, task: Any, n: int | None = None) -> dict[str, np.ndarray]:
    """Read a Minari dataset of complete chains back as ``{prompts (N, P), chain (N, H)}``.

    Args:
        dataset: a local Minari dataset id (e.g. from :func:`export_minari`).
        task: the task core the chains must fit (e.g. a trainer's ``ModAddTask``).
        n: the number of episodes to read (the first n); None reads them all.

    Raises:
        ValueError: the dataset is missing, too small, or of another task shape.
    """
    minari = _minari()
    if dataset not in minari.list_local_datasets():
        local = list(minari.list_local_datasets())
        raise ValueError(f"no local Minari dataset `{dataset}` (in $MINARI_DATASETS_PATH); export one with "
                         f"`neg export-minari`.{did_you_mean(dataset, local)}")
    ds = minari.load_dataset(dataset)
    total = ds.total_episodes
    n = total if n is None else n
    if n > total:
        raise ValueError(f"Minari dataset `{dataset}` holds {total} episodes, fewer than the {n} asked "
                         "for (the trajectory budget); lower the budget or export more episodes")
    shape = ds.observation_space.shape
    if shape != (task.obs_len,):
        raise ValueError(f"Minari dataset `{dataset}` has observations of shape {shape}, but the task "
                         f"{task} needs ({task.obs_len},): export it from the same env (same p and m)")
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
    minari = _minari()
    return dict(minari.load_dataset(dataset).storage.metadata.get(METADATA_KEY, {}))


__all__ = ["EXPERTS", "NAMESPACE", "dataset_id", "dataset_metadata", "expert_rollouts", "export_minari",
           "load_chains"]
