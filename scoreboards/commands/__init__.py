"""The scoreboards' subcommands of ``neg`` (:mod:`scoreboards.cli` registers them).

- :mod:`~scoreboards.commands.bench`: ``neg bench run|report|horizon|export|list``;
- :mod:`~scoreboards.commands.board`: ``neg board show|list|baselines|verify|publish|secret``
  and ``neg submit``;
- :mod:`~scoreboards.commands.common`: what they share (``--db``, opening the results database).

Each command imports what it needs when it runs, so ``neg bench --help`` and ``neg board
--help`` load neither torch nor matplotlib.
"""
