"""``neg board show|list|baselines|verify|private|publish|secret`` and ``neg submit``: the leaderboards.

:func:`add_subcommands` adds them to the parser of :mod:`scoreboards.cli`; each command
imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

from scoreboards.commands.common import add_db_arg, open_store


def _kv(items: list[str] | None) -> dict[str, Any]:
    """``["beta=0.5", "tau=1"]`` -> {"beta": 0.5, "tau": 1} (values parsed as TOML)."""
    from scoreboards.config import parse_override

    out: dict[str, Any] = {}
    for text in items or []:
        keys, value = parse_override(text)
        out[".".join(keys)] = value
    return out


def _output_file(path: str | None, flag: str) -> None:
    """Refuse an output file that cannot be written, before any work is done."""
    import os

    if path and os.path.isdir(path):
        raise ValueError(f"{flag} {path} is a folder; give a file path")


def _check_target(target: str) -> None:
    """A submission target's form, file and module, checked before anything runs."""
    import ast
    import importlib.util
    import os

    if ":" not in target:
        raise ValueError(f"a submission target is `module:Class`, `path/to/file.py:Class`, `path/to/dir/:Class` "
                         f"or `builtin:ALGO`, got `{target}`")
    if target.startswith("builtin:"):  # a registry name (`nail-f`, `bc-clean`), not a class name
        _check_builtin(target.removeprefix("builtin:"))
        return
    mod, _, cls = target.rpartition(":")
    if not cls.isidentifier():
        raise ValueError(f"`{cls}` in `{target}` is not a class name; write `{mod}:ClassName`")
    if mod.endswith(".py") or "/" in mod or os.sep in mod:
        if os.path.isdir(mod):
            if not mod.endswith(("/", os.sep)):
                raise ValueError(f"submission {mod} is a folder: write `{mod}/:{cls}` for a directory "
                                 f"submission (its submission.py defines `{cls}`), or give the .py file")
            if not os.path.isfile(os.path.join(mod, "submission.py")):
                raise FileNotFoundError(f"submission directory {mod} has no submission.py; put the class "
                                        f"`{cls}` there")
            mod = os.path.join(mod, "submission.py")
        if not os.path.lexists(mod):
            raise FileNotFoundError(f"submission file {mod} does not exist; check the path (`file.py:Class`)")
        from scoreboards.leaderboard.entry_code import submission_code

        code = submission_code(target)  # read without following links: only regular files are accepted
        try:
            ast.parse(code.data[code.entry], filename=mod)
        except (SyntaxError, ValueError) as e:
            raise ValueError(f"submission file {mod} is not valid Python ({type(e).__name__}: "
                             f"{getattr(e, 'msg', e)}, line {getattr(e, 'lineno', '?')}); fix it") from None
        return
    try:
        found = importlib.util.find_spec(mod)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise ValueError(f"no module `{mod}` to import; give an importable module or a path "
                         f"(path/to/file.py:{cls})")


#: The project's packages: an algorithm in one of their modules is project code, run by the trusted adapter.
PROJECT_PACKAGES = ("agents", "noisy_expert_gym", "scoreboards")


def _check_builtin(algo: str) -> None:
    """A built-in algorithm's name, or an algorithm in a module of the project's packages (such as the
    shipped example ``agents.examples.mode_bc:ModeBC``): both run in the trusted adapter."""
    from agents.algos import get_algorithm
    from agents.registry import is_plugin

    if is_plugin(algo) and algo.partition(":")[0].split(".")[0] not in PROJECT_PACKAGES:
        raise ValueError(f"`builtin:` runs the project's own code: a built-in name or a module of "
                         f"{', '.join(PROJECT_PACKAGES)}, got `{algo}`; your own algorithm enters as a "
                         f"submission, `neg submit {algo} --board ...` (sandboxed and untrusted)")
    get_algorithm(algo)  # unknown: the valid names and a suggestion; a plugin: loaded and checked


def _board_show(args: argparse.Namespace) -> int:
    from scoreboards.leaderboard.boards import load_board
    from scoreboards.leaderboard.render import render_board, write_board

    board = load_board(args.board)
    _output_file(args.out, "--out")
    with open_store(args) as store:
        print(render_board(board, store))
        if args.out:
            print(f"written to {write_board(board, store, args.out)}")
    return 0


def _board_list(args: argparse.Namespace) -> int:
    from scoreboards.leaderboard.boards import load_board, shipped_boards

    for name in shipped_boards():
        b = load_board(name)
        rule = f"hidden {'+'.join(b.hidden)}" if b.hidden else "OPEN (practice)"
        access = {"full": "", "sample": ", sample-only", "topk": f", top-{b.top_k}"}.get(b.access, "")
        print(f"{name:32s} [{rule}{access}] {b.env_id} {b.env_kwargs}  budget {b.budget_trajectories:,} traj; "
              f"{b.cost}")
    return 0


def _board_verify(args: argparse.Namespace) -> int:
    from scoreboards.leaderboard.boards import load_board
    from scoreboards.leaderboard.verify import verify_entry
    from scoreboards.untrusted import terminal

    board = load_board(args.board)
    with open_store(args) as store:
        v = verify_entry(board, args.entry, store, timeout=args.timeout)
    print(f"entry {args.entry}: {v.outcome}: {terminal(v.detail, keep_newlines=True)}")
    return 0 if v.ok else 1


def _board_publish(args: argparse.Namespace) -> int:
    from scoreboards.leaderboard.boards import load_board, shipped_boards
    from scoreboards.leaderboard.site import publish

    boards = [load_board(b) for b in (args.boards or shipped_boards())]
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ValueError(f"--out {args.out} is a file; give a folder for the site (it is created if missing)")
    with open_store(args) as store:
        index = publish(boards, store, args.out)
    print(f"site written: open {index}")
    return 0


def _board_private(args: argparse.Namespace) -> int:
    from scoreboards.leaderboard.boards import load_board
    from scoreboards.leaderboard.private import run_round
    from scoreboards.leaderboard.render import render_board, write_board

    board = load_board(args.board)
    with open_store(args) as store:
        got = run_round(board, store, timeout=args.timeout)
        write_board(board, store)
        print(render_board(board, store))
    rejected = sum(r["outcome"] != "scored" for r in got["rows"])
    print(f"private round {got['round']} (secret id {got['secret_id']}): {len(got['rows']) - rejected} entries "
          f"ranked, {rejected} rejected")
    return 0


def _board_secret(args: argparse.Namespace) -> int:
    from scoreboards.leaderboard.hidden import load_secret, secret_id, secret_path
    from scoreboards.store import default_db

    if args.db and Path(args.db).is_dir():
        raise ValueError(f"--db {args.db} is a folder; give the database file (the secret lives beside it)")
    results = Path(args.db).parent if args.db else default_db().parent
    where = str(secret_path(results))
    try:
        secret = load_secret(results, create=args.create)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{e}; `neg board secret --create` makes one") from None
    print(f"board secret: {where} (id {secret_id(secret)}; the secret itself is never printed)")
    return 0


def _enter(board: Any, target: str, store: Any, name: str | None, params: dict, train: dict,
           timeout: float | None) -> bool:
    from scoreboards.leaderboard.entries import submit
    from scoreboards.leaderboard.submission import SubmissionRejected
    from scoreboards.leaderboard.submission.sandbox import SandboxUnavailable
    from scoreboards.untrusted import terminal

    try:
        e = submit(board, target, store, name=name, params=params, train=train, timeout=timeout)
    except SubmissionRejected as err:
        print(f"REJECTED {terminal(name or target.rpartition(':')[2])}: {terminal(err.reason, keep_newlines=True)}",
              file=sys.stderr)
        return False
    except SandboxUnavailable as err:
        print(f"NOT RUN {terminal(name or target.rpartition(':')[2])}: {terminal(err, keep_newlines=True)}",
              file=sys.stderr)
        return False
    from scoreboards.analysis.stats import seed_summary

    ci = seed_summary(e, e["metric"]).ci_text()
    ci = f" {ci}" if ci else ""
    print(f"accepted {terminal(e['name'])}: {e['metric']} = {e['score']:.3f}{ci} (entry {e['id']})")
    return True


def _board_baselines(args: argparse.Namespace) -> int:
    from scoreboards.leaderboard.boards import load_board
    from scoreboards.leaderboard.render import render_board, write_board

    board = load_board(args.board)
    wanted = set(args.only or [])
    ok = True
    with open_store(args, create=True) as store:
        for b in board.baselines:
            if wanted and b["algo"] not in wanted:
                continue
            ok &= _enter(board, f"builtin:{b['algo']}", store, b.get("name"), b.get("params", {}),
                         b.get("train", {}), args.timeout)
        write_board(board, store)
        print(render_board(board, store))
    return 0 if ok else 1


#: `neg submit --smoke`: this fraction of the board's budget, one training seed, at most this many
#: held-out prompts; never entered.
SMOKE_FRACTION, SMOKE_PROMPTS = 10, 256


def smoke_board(board: Any) -> Any:
    """The board cut to a quick try (``neg submit --smoke``): its first training seed, a tenth of its
    budget, a few held-out prompts; the same task, protocol rules and sandbox."""
    import dataclasses

    cut = max(1, board.budget_trajectories // SMOKE_FRACTION)
    queries = None if board.budget_queries is None else max(1, board.budget_queries // SMOKE_FRACTION)
    return dataclasses.replace(board, train_seeds=list(board.train_seeds[:1]), budget_trajectories=cut,
                               budget_queries=queries, eval_prompts=min(board.eval_prompts, SMOKE_PROMPTS))


def _smoke(board: Any, target: str, store: Any, name: str, params: dict, train: dict,
           timeout: float | None) -> bool:
    from scoreboards.leaderboard.entries import run_entry
    from scoreboards.leaderboard.submission import SubmissionRejected
    from scoreboards.leaderboard.submission.sandbox import SandboxUnavailable

    small = smoke_board(board)
    print(f"smoke run of {name} on {board.name}: seed {small.train_seeds[0]}, {small.budget_trajectories:,} of "
          f"{board.budget_trajectories:,} trajectories, {small.eval_prompts} held-out prompts; not entered")
    try:
        ran = run_entry(small, target, store, params=params, train=train, timeout=timeout, name=name)
    except SubmissionRejected as err:
        print(f"REJECTED {name}: {err.reason}", file=sys.stderr)
        return False
    except SandboxUnavailable as err:
        print(f"NOT RUN {name}: {err}", file=sys.stderr)
        return False
    (out,) = ran["outcomes"]
    print(f"smoke ok {name}: {board.metric} = {out.metrics[board.metric]:.3f} after {out.trajectories:,} "
          f"trajectories ({out.wall_time:.1f} s); enter it without --smoke")
    return True


def _submit(args: argparse.Namespace) -> int:
    from scoreboards.leaderboard.boards import load_board
    from scoreboards.leaderboard.render import render_board, write_board
    from scoreboards.leaderboard.submission import unsandboxed

    _check_target(args.target)
    board = load_board(args.board)
    name = args.name
    if args.target.startswith("builtin:") and ":" in args.target.removeprefix("builtin:"):
        name = name or args.target.rpartition(":")[2]  # a project module's algorithm: its class name
    isolation = unsandboxed() if args.no_sandbox else contextlib.nullcontext()
    with open_store(args, create=True) as store, isolation:
        if args.smoke:
            ok = _smoke(board, args.target, store, name or args.target.rpartition(":")[2], _kv(args.param),
                        _kv(args.train), args.timeout)
            return 0 if ok else 1
        ok = _enter(board, args.target, store, name, _kv(args.param), _kv(args.train), args.timeout)
        if ok:
            write_board(board, store)
            print(render_board(board, store))
    return 0 if ok else 1


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    board = sub.add_parser("board", help="leaderboards: show them, enter the built-in baselines")
    osub = board.add_subparsers(dest="board_command", metavar="ACTION")
    p = osub.add_parser("show", help="print a board as Markdown")
    p.add_argument("board", help="a shipped board's name (neg board list) or a .toml path")
    p.add_argument("--out", default=None, help="also write the Markdown to this file")
    add_db_arg(p)
    p.set_defaults(func=_board_show)
    p = osub.add_parser("list", help="the shipped boards")
    p.set_defaults(func=_board_list)
    p = osub.add_parser("baselines", help="enter the board's built-in baselines through the submission path")
    p.add_argument("board")
    p.add_argument("--only", nargs="*", help="only these algorithms")
    p.add_argument("--timeout", type=float, default=None, help="per-run limit in seconds (default: the board's)")
    add_db_arg(p)
    p.set_defaults(func=_board_baselines)
    p = osub.add_parser("verify", help="re-run an entry from its stored code; is its score reproduced?")
    p.add_argument("board")
    p.add_argument("entry", type=int, help="the entry's id (the `entry` column of `neg board show` and of the web site)")
    p.add_argument("--timeout", type=float, default=None, help="per-run limit in seconds (default: the board's)")
    add_db_arg(p)
    p.set_defaults(func=_board_verify)
    p = osub.add_parser("publish", help="write the leaderboards as a static web site (open OUT/index.html)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--boards", nargs="*", help="only these boards (default: every shipped board)")
    add_db_arg(p)
    p.set_defaults(func=_board_publish)
    p = osub.add_parser("private", help="rank a hidden-rule board's stored entries on a fresh secret (a private round)",
                        description="Draw a fresh secret after every entry of the board is stored, re-run each "
                                    "entry from its stored code on the instances drawn from it, and rank them: "
                                    "the board's ranking (practice scores are on the harness's fixed secret).")
    p.add_argument("board")
    p.add_argument("--timeout", type=float, default=None, help="per-run limit in seconds (default: the board's)")
    add_db_arg(p)
    p.set_defaults(func=_board_private)
    p = osub.add_parser("secret", help="where the harness's secret for hidden-rule boards lives, and its id")
    p.add_argument("--create", action="store_true", help="create it if missing")
    add_db_arg(p)
    p.set_defaults(func=_board_secret)
    board.set_defaults(func=lambda a: board.print_help() or 2)

    p = sub.add_parser("submit", help="run a submission under a board's protocol and enter it",
                       description="Run `module:Class`, `path/to/file.py:Class` or `builtin:ALGO` under "
                                   "the board's protocol (a sandboxed worker process, a budgeted expert client, "
                                   "held-out evaluation by the harness). See scoreboards/README.md.")
    p.add_argument("target", help="module:Class, path/to/file.py:Class, builtin:ALGO (a built-in name, or "
                                  "an algorithm in a module of the project, e.g. "
                                  "builtin:agents.examples.mode_bc:ModeBC)")
    p.add_argument("--board", required=True)
    p.add_argument("--name", default=None, help="display name (default: the class or algorithm name)")
    p.add_argument("--param", action="append", metavar="K=V", help="builtin: algorithm parameter (checked "
                                                                   "against its declaration)")
    p.add_argument("--train", action="append", metavar="K=V", help="builtin: training field (preset, lr, ...)")
    p.add_argument("--timeout", type=float, default=None, help="per-run limit in seconds (default: the board's)")
    p.add_argument("--smoke", action="store_true",
                   help=f"a quick try, never entered: one training seed, 1/{SMOKE_FRACTION} of the budget, at most "
                        f"{SMOKE_PROMPTS} held-out prompts, under the board's protocol and sandbox")
    p.add_argument("--no-sandbox", action="store_true",
                   help="run the worker without the bubblewrap sandbox (your own code only, where no "
                        "sandbox can be set up); the entry is recorded as unsandboxed")
    add_db_arg(p)
    p.set_defaults(func=_submit)
