"""The gunicorn hook a multi-worker deployment with metrics configures; defined in
:mod:`uauth.core.metrics`."""

from __future__ import annotations

from uauth.core.metrics import worker_exited

__all__ = ["worker_exited"]
