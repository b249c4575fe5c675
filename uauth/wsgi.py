"""The WSGI entry of an installed uauth: ``gunicorn 'uauth.wsgi:app'`` (a checkout's
``wsgi.py`` imports it). The instance folder is ``$UAUTH_INSTANCE`` (else ``./instance``);
how the issuer follows gunicorn's bind is :mod:`uauth.ops.wsgi`. Wiring: it hands
:func:`uauth.app.create_app` to ops, which never imports the wiring itself.
"""

from __future__ import annotations

from uauth.app import create_app
from uauth.ops.wsgi import load

app = load(create_app)
