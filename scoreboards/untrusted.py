"""Strings a submission controls, made safe for where they are shown.

A board entry's name, its target (module and class name), a rejected run's reason (the
submission's own error message and output tail) and a re-run's detail come from whoever
submitted it. They are data, never markup or terminal commands, wherever they are shown:

- **terminal** (:func:`terminal`): ``neg submit``, ``neg board show|baselines|verify|publish``
  print them; every control or formatting character (Unicode categories Cc, Cf, Zl, Zp: ESC
  sequences such as ``\\x1b[2J``, carriage returns, backspaces, bidirectional overrides) is
  written as a visible escape (``\\x1b``, ``\\u202e``), so a name cannot clear the screen,
  move the cursor, retitle the window or hide text; newlines too unless the caller keeps them;
- **Markdown** (:func:`markdown_cell`): board tables (``neg board show``, ``results/boards/*.md``)
  escape every character with a meaning in a table cell (``\\ ` * _ [ ] < > | # ! ~ &``) with a
  backslash and write newlines as spaces, so a name stays one cell of one row and no link,
  image or HTML;
- **HTML**: the site's Jinja2 templates autoescape every value (:mod:`scoreboards.leaderboard.site`)
  and pass each string through :func:`terminal` first (its ``finalize``), so control characters
  are visible there too.
"""

from __future__ import annotations

import unicodedata

#: Unicode categories written as escapes: controls, formatting (bidi overrides, zero-width), line and
#: paragraph separators.
HIDDEN_CATEGORIES = ("Cc", "Cf", "Zl", "Zp")
#: Characters with a meaning in a Markdown table cell (CommonMark and GitHub tables).
MARKDOWN_SPECIAL = "\\`*_[]<>|#!~&"


def _escape(c: str) -> str:
    o = ord(c)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def terminal(text: object, keep_newlines: bool = False) -> str:
    """`text` with every control/formatting character as a visible escape (``\\x1b``, ``\\u202e``).

    Args:
        text: any value (``str()`` of it is shown).
        keep_newlines: keep ``\\n`` (multi-line reasons); tabs are kept too.
    """
    keep = "\n\t" if keep_newlines else ""
    return "".join(c if c in keep or unicodedata.category(c) not in HIDDEN_CATEGORIES else _escape(c)
                   for c in str(text))


def markdown_cell(text: object) -> str:
    """`text` as the content of one Markdown table cell: newlines as spaces, control characters
    escaped (:func:`terminal`), every Markdown-special character backslash-escaped."""
    flat = str(text).replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return "".join(f"\\{c}" if c in MARKDOWN_SPECIAL else c for c in terminal(flat))


__all__ = ["HIDDEN_CATEGORIES", "MARKDOWN_SPECIAL", "markdown_cell", "terminal"]
