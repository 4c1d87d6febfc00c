"""Sweeps: experiment specs and running them.

- :mod:`~scoreboards.sweeps.spec_model`: the spec file, declared; the ``Spec`` it validates
  into; runs, their identity and keys;
- :mod:`~scoreboards.sweeps.specs`: loading a spec (a shipped name or a path);
- :mod:`~scoreboards.sweeps.runner`: a sweep on a local process pool or Ray, resumed where it
  stopped; the driver writes the results store;
- ``shipped_specs/``: the specs shipped with the package (``neg bench list``).

Nothing is imported here: import the module you need.
"""
