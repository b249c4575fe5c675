"""The process id the stores check before every statement, read from memory: it must still
change in a forked child, or a child would use the connections it inherited."""

from __future__ import annotations

import os

from tests.conftest import ask_forked_child
from uauth.storage.process import current_pid


def _report_pids(results: object) -> None:
    results.put((current_pid(), os.getpid()))  # type: ignore[attr-defined]


def test_a_forked_child_reads_its_own_process_id() -> None:
    assert current_pid() == os.getpid()
    answer = ask_forked_child(_report_pids)
    assert isinstance(answer, tuple)
    child_cached, child_real = answer
    assert child_cached == child_real != os.getpid()
    assert current_pid() == os.getpid(), "the parent's is unchanged"
