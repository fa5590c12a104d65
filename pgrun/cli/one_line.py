"""Command-line errors as pgrun's plain commands (pgrun-eval, pgrun-variance) give them: one
line on stderr, `PROG: error: ...`, and an exit status (2 for bad input)."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


def fail(prog: str, message: str, status: int = 2) -> NoReturn:
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(status)


class OneLineParser(argparse.ArgumentParser):
    """argparse, with usage errors as one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        fail(self.prog, f"{message} (see {self.prog} --help)")
