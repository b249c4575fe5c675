"""The baseline: the cheapest Flask endpoint, served by gunicorn exactly as ``uauth serve`` is.

Every figure of the bench is also given as a ratio to this one, so a reader sees how much of a
provider's cost is the web stack itself (gunicorn, HTTP parsing, WSGI, Flask routing).
"""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "ok"
