"""Stable-Baselines3 bridge: an SB3 ``VecEnv`` over a Gymnasium ``VectorEnv``.

SB3 rejects Gymnasium ``VectorEnv``s: it has its own ``VecEnv`` API (``step_async``
/ ``step_wait``, a list of info dicts) and its own autoreset convention: when a
sub-env's episode ends, ``step`` already returns the *reset* observation and
puts the final one in ``infos[i]["terminal_observation"]``. The native
NoisyModAdd vector env uses Gymnasium's ``NEXT_STEP`` autoreset (the final
observation is returned, the reset happens on the following step), so the
adapter resets ended sub-envs itself, right away. Every sub-env draws its
prompts from its own generator, so this yields exactly the native env's
episodes in the same order, minus the native env's extra reset steps.

Example::

    from stable_baselines3 import PPO
    from noisy_expert_gym.bridges.sb3 import make_sb3_vec_env

    venv = make_sb3_vec_env("NoisyModAdd-m3-v0", num_envs=16, reward="dense")
    model = PPO("MlpPolicy", venv).learn(20_000)

A features extractor that embeds the token ids instead of flattening them is a
learner's part and lives with the learners
(:class:`agents.sb3_features.TokenFeaturesExtractor`, used by ``agents``' ``ppo``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn

from noisy_expert_gym.problems import Problem
from noisy_expert_gym.utils import did_you_mean


# --------------------------------------------------------------------------- the VecEnv adapter
class SB3VecEnv(VecEnv):
    """A Gymnasium ``VectorEnv`` seen as a Stable-Baselines3 ``VecEnv``.

    Works with every Gymnasium autoreset mode: ``NEXT_STEP`` (the native
    NoisyModAdd vector env, ``SyncVectorEnv``'s default), ``SAME_STEP`` and
    ``DISABLED``. Ended sub-envs are reset with ``reset()`` when all of them end
    together (always the case for NoisyModAdd, whose episodes all last m steps)
    and with ``reset(options={"reset_mask": ended})`` otherwise.

    ``get_attr`` / ``set_attr`` / ``env_method`` reach the sub-envs of a
    ``SyncVectorEnv``; on a natively batched env (one object for all sub-envs)
    they read, write or call the vector env itself, once, and ``get_attr`` of
    ``observation_space`` / ``action_space`` gives the single-env space.

    Args:
        venv: the vector env (e.g. ``gym.make_vec("NoisyModAdd-v0", num_envs=16)``).
    """

    def __init__(self, venv: VectorEnv) -> None:
        if not isinstance(venv, VectorEnv):
            raise TypeError(f"SB3VecEnv wraps a gymnasium.vector.VectorEnv, got {type(venv).__name__}; "
                            "for single envs use stable_baselines3's DummyVecEnv or make_vec_env")
        self.venv = venv
        self.autoreset_mode = AutoresetMode(venv.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP))
        self._actions: np.ndarray | None = None
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)

    # ----- the SB3 VecEnv API ---------------------------------------------------
    def reset(self) -> np.ndarray:
        seed: list[int | None] | None = None if all(s is None for s in self._seeds) else list(self._seeds)
        options = _one_options(self._options)
        obs, info = self.venv.reset(seed=seed, options=options)
        self.reset_infos = _unbatch_info(info, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("call step_async(actions) before step_wait()")
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        self._actions = None
        dones = np.asarray(terminated, bool) | np.asarray(truncated, bool)
        if self.autoreset_mode == AutoresetMode.SAME_STEP and dones.any():
            # Gymnasium already reset them: the final step's info and observation are in final_*.
            final_obs, final_info = info.get("final_obs"), info.get("final_info", {})
            infos = _unbatch_info({k: v for k, v in info.items() if k not in ("final_obs", "_final_obs",
                                                                              "final_info", "_final_info")},
                                  self.num_envs)
            done_infos = _unbatch_info(final_info, self.num_envs)
            for i in np.flatnonzero(dones):
                self.reset_infos[i] = infos[i]
                infos[i] = {**done_infos[i], "terminal_observation": final_obs[i]}
        else:
            infos = _unbatch_info(info, self.num_envs)
            if dones.any():
                obs = self._reset_ended(obs, dones, infos)
        for i in range(self.num_envs):
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, np.asarray(rewards, np.float32), dones, infos

    def _reset_ended(self, obs: np.ndarray, dones: np.ndarray, infos: list[dict[str, Any]]) -> np.ndarray:
        """Reset the ended sub-envs now (SB3's convention) and keep their final observations."""
        final = obs[dones].copy()
        if dones.all():
            new, rinfo = self.venv.reset()
        else:
            new, rinfo = self.venv.reset(options={"reset_mask": dones.copy()})
            # An env that ignores reset_mask would have restarted the running episodes too.
            if not np.array_equal(new[~dones], obs[~dones]):
                raise RuntimeError(
                    f"{type(self.venv.unwrapped).__name__} ignored reset(options={{'reset_mask': ...}}) "
                    "and restarted running episodes; SB3VecEnv needs vector envs whose sub-envs end "
                    "together or that support Gymnasium's reset_mask option (e.g. SyncVectorEnv)")
        out = np.where(_rows(dones, obs.ndim), new, obs)
        reset_infos = _unbatch_info(rinfo, self.num_envs)
        for k, i in enumerate(np.flatnonzero(dones)):
            infos[i]["terminal_observation"] = final[k]
            self.reset_infos[i] = reset_infos[i]
        return out

    def close(self) -> None:
        self.venv.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            warnings.warn(f"the render mode is {self.render_mode}; get_images needs `rgb_array`")
            return [None] * self.num_envs
        return list(self.venv.render())

    # ----- attributes and methods of the sub-envs ------------------------------------
    def _envs(self) -> list[gym.Env] | None:
        """The sub-env objects of a Sync vector env; None for a natively batched env."""
        envs = getattr(self.venv.unwrapped, "envs", None)
        return list(envs) if envs is not None else None

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        idx = self._get_indices(indices)
        envs = self._envs()
        if envs is not None:
            return [envs[i].get_wrapper_attr(attr_name) for i in idx]
        if attr_name in ("observation_space", "action_space"):
            attr_name = "single_" + attr_name
        value = getattr(self.venv, attr_name)
        return [value for _ in idx]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        idx = list(self._get_indices(indices))
        envs = self._envs()
        if envs is not None:
            for i in idx:
                envs[i].set_wrapper_attr(attr_name, value)
            return
        if sorted(idx) != list(range(self.num_envs)):
            raise ValueError(f"{type(self.venv.unwrapped).__name__} is one batched env: set_attr can only "
                             "set an attribute for all sub-envs at once (indices=None)")
        setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        idx = list(self._get_indices(indices))
        envs = self._envs()
        if envs is not None:
            return [envs[i].get_wrapper_attr(method_name)(*method_args, **method_kwargs) for i in idx]
        out = getattr(self.venv, method_name)(*method_args, **method_kwargs)  # one call for the batch
        return [out for _ in idx]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        from stable_baselines3.common.env_util import is_wrapped

        idx = list(self._get_indices(indices))
        envs = self._envs()
        if envs is None:
            return [False for _ in idx]  # a batched env has no per-sub-env wrappers
        return [is_wrapped(envs[i], wrapper_class) for i in idx]


def _rows(mask: np.ndarray, ndim: int) -> np.ndarray:
    return mask.reshape(mask.shape + (1,) * (ndim - 1))


def _one_options(options: list[dict[str, Any]]) -> dict[str, Any] | None:
    """SB3 keeps reset options per sub-env; a Gymnasium vector env takes one dict for all."""
    if all(not o for o in options):
        return None
    if any(o != options[0] for o in options[1:]):
        raise ValueError("a Gymnasium vector env takes one reset `options` dict for every sub-env; "
                         "call set_options() with a single dict")
    return dict(options[0])


def _unbatch_info(info: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """Gymnasium's dict of arrays (with ``_key`` masks) -> SB3's list of per-env dicts."""
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    for k, v in info.items():
        if k.startswith("_"):
            continue
        mask = info.get("_" + k)
        if isinstance(v, dict):  # nested infos (e.g. from wrappers)
            for i, sub in enumerate(_unbatch_info(v, n)):
                if sub:
                    out[i][k] = sub
            continue
        for i in range(n):
            if mask is None or mask[i]:
                x = v[i]
                out[i][k] = x.item() if isinstance(x, np.generic) else x
    return out


def make_sb3_vec_env(env_id: str | None = None, num_envs: int = 1, *, problem: Problem | None = None,
                     **env_kwargs: Any) -> SB3VecEnv:
    """``gym.make_vec`` (the native batched env where the id has one) wrapped as an SB3 ``VecEnv``.

    Args:
        env_id: a registered env id, e.g. ``"NoisyModAdd-v0"`` (default: the problem's).
        num_envs: number of sub-envs.
        problem: serve this problem (:func:`noisy_expert_gym.make_problem`) instead of
            building one from ``env_kwargs``.
        **env_kwargs: env keyword arguments (``eta``, ``m``, ``reward``, ...; with
            ``problem``, env-only options such as ``reward``).
    """
    import noisy_expert_gym  # noqa: F401  (registers the envs)

    if problem is not None:
        env_id = env_id or problem.env_id
        env_kwargs = {**problem.env_options, **env_kwargs, "problem": problem}
    if env_id not in gym.registry:
        raise ValueError(f"unknown env id `{env_id}`.{did_you_mean(str(env_id), gym.registry)}")
    mode = "vector_entry_point" if gym.spec(env_id).vector_entry_point else "sync"
    return SB3VecEnv(gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode, **env_kwargs))


__all__ = ["SB3VecEnv", "make_sb3_vec_env"]
