"""This process's id, kept current across ``fork`` without a system call per statement.

Every store checks it before each statement, so a forked worker never uses a connection it
inherited; ``os.getpid`` is a system call each time (glibc stopped caching it), about 24 per
SSO flow on SQLite. ``os.fork`` (and so ``multiprocessing`` and gunicorn) runs the hook below
in the child; ``subprocess`` execs at once and runs no Python in between.
"""

from __future__ import annotations

import os

_pid = os.getpid()


def _forked() -> None:
    global _pid  # noqa: PLW0603 - the one value this module keeps
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def current_pid() -> int:
    """``os.getpid()``, read from memory."""
    return _pid
