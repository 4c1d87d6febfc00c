"""Benchmarks and the docs' table and figure scripts: scripts over the packages, not part of them.

Run from the repository root, each as a module or as a path (``python -m benchmarks.env_speed``,
``python benchmarks/env_speed.py``). Each prints numbers measured in its one run; ratios compare
numbers of the same run only. Not in the wheel (``pyproject.toml`` packages only
``noisy_expert_gym``, ``agents`` and ``scoreboards``): they may import any of those, and none of
those imports them (``tests/test_layers.py``).

Speed and time-to-solve:

- :mod:`benchmarks.train_speed`: one training update, phase by phase, today's policy against the
  old eager one (:mod:`benchmarks.old_policy`, read from git history); FLOPs; profiles; the
  m = 31 learning benchmark through the real trainer (``--learning``);
- :mod:`benchmarks.gpu_speed`: the paper model's training throughput on a GPU (eager, CUDA graphs,
  ``torch.compile``); runs with torch and numpy alone (:mod:`benchmarks.lean_imports`);
- :mod:`benchmarks.env_speed`: the native vector envs against ``SyncVectorEnv``, oracle queries/s;
- :mod:`benchmarks.gsm8k_speed`: NoisyGSM8K's reference teacher and env;
- :mod:`benchmarks.harness_overhead`: a sweep's harness overhead and the submission pipe's cost.

The docs' results, from finished sweeps:

- :mod:`benchmarks.figs_cpu`: docs/figs_cpu.md's tables and figures;
- :mod:`benchmarks.gsm8k_cpu_table`: docs/gsm8k_cpu.md's table and figure, after
  ``benchmarks/gsm8k_warm_start.sh`` (its warm-start checkpoint) and ``neg bench run gsm8k-warm``.
"""
