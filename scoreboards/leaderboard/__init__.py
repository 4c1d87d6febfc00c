"""Leaderboards: boards, their hidden instances, entries and their verification, the web site.

- :mod:`~scoreboards.leaderboard.board_model`: the board file, declared; the ``Board`` it
  validates into;
- :mod:`~scoreboards.leaderboard.boards`: loading a board (a shipped name or a path);
- :mod:`~scoreboards.leaderboard.hidden`: the harness's secret and each run's hidden instance;
- :mod:`~scoreboards.leaderboard.entries`: entering a board (``neg submit``): every training seed
  run, the entry recorded;
- :mod:`~scoreboards.leaderboard.entry_code`: an entry's code, its digest and stored copy;
- :mod:`~scoreboards.leaderboard.verify`: re-running an entry; what "verified" means;
- :mod:`~scoreboards.leaderboard.render`: a board as Markdown;
- :mod:`~scoreboards.leaderboard.site` and ``templates/``: the static web site;
- :mod:`~scoreboards.leaderboard.builtin`: the built-in algorithms as submissions;
- :mod:`~scoreboards.leaderboard.submission`: one sandboxed run of a submission (the worker, the
  socket protocol, the expert server, the sandbox);
- ``shipped_boards/``: the boards shipped with the package (``neg board list``).

Nothing is imported here (the submission worker imports this package and must stay light):
import the module you need.
"""
