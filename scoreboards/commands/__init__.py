"""The scoreboards' subcommands of ``neg`` (:mod:`scoreboards.cli` registers them).

- :mod:`~scoreboards.commands.bench`: ``neg bench``, ``neg board`` and ``neg submit``.

Each command imports what it needs when it runs.
"""
