"""Logging for embedding apps (``RequestIdFilter``) and ``wsgi.py``; defined in
:mod:`uauth.web.requestlog` and :mod:`uauth.ops.logs`."""

from __future__ import annotations

from uauth.ops.logs import JsonFormatter
from uauth.ops.logs import configure_logging
from uauth.web.requestlog import RequestIdFilter

__all__ = ["JsonFormatter", "RequestIdFilter", "configure_logging"]
