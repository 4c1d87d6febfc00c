"""Attack (reconnaissance): gather every path the worker can learn without the kernel's mount
table -- its interpreter, prefixes, import path, modules' files, environment, working
directory, the Python environment's .pth files and install records -- and report which of
the host locations the test names in ``spec["host"]`` (the checkout, the virtual environment,
the Python installation, the results folder) appear in them."""

import glob
import json
import os
import sys
from pathlib import Path

import numpy as np


class ReportsPaths:
    def __init__(self, spec):
        self.spec = spec

    def train(self, expert):
        import numpy

        import scoreboards

        seen = {"executable": sys.executable, "prefix": sys.prefix, "base_prefix": sys.base_prefix,
                "exec_prefix": sys.exec_prefix, "path": sys.path, "argv": sys.argv, "cwd": os.getcwd(),
                "environ": dict(os.environ), "numpy": numpy.__file__, "scoreboards": scoreboards.__file__,
                "orig_argv": getattr(sys, "orig_argv", []), "file": __file__}
        texts = {}
        for pattern in ("/neg/**/*.pth", "/neg/**/*.dist-info/direct_url.json", "/neg/**/__editable__*",
                        "/neg/**/pyvenv.cfg", "/proc/self/environ", "/proc/1/environ", "/proc/self/cmdline"):
            for p in glob.glob(pattern, recursive=True):
                try:
                    texts[p] = Path(p).read_bytes().decode(errors="replace")
                except OSError:
                    pass
        seen["files"] = texts
        text = json.dumps(seen)
        leaks = sorted(h for h in self.spec["host"] if h in text)
        where = {h: text[max(0, text.index(h) - 60): text.index(h) + len(h)] for h in leaks}
        raise RuntimeError(f"looked at {len(text)} characters ({'numpy' in text and 'scoreboards' in text}); "
                           f"LEAKS {where}")

    def act(self, observations):
        return np.zeros(len(observations), dtype=np.int64)
