"""`uauth serve`: the provider under real gunicorn answers health, discovery and JWKS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.live_server import LiveServer


@pytest.fixture(params=["sqlite", "redis"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    instance = tmp_path / "instance"
    if request.param == "redis":
        storage = request.getfixturevalue("redis_url")
        env = {"UAUTH_REDIS_PREFIX": f"serve{tmp_path.name[-8:]}:"}
    else:
        storage, env = f"sqlite:///{instance}/uauth.db", {}
    live = LiveServer(instance, storage=storage, env=env)
    assert live.cli("init").returncode == 0
    yield live.start()
    live.stop()


def test_serve_answers_health_discovery_and_jwks(server: LiveServer) -> None:
    assert requests.get(server.url + "/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(server.url + "/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["checks"] == {"keys": "ok", "storage": "ok"}
    meta = requests.get(server.url + "/.well-known/openid-configuration", timeout=5)
    assert meta.json()["issuer"] == server.url
    assert "max-age" in meta.headers["Cache-Control"]
    jwks = requests.get(meta.json()["jwks_uri"], timeout=5).json()
    assert [k["kty"] for k in jwks["keys"]] == ["RSA"]
    assert all("d" not in k and "p" not in k for k in jwks["keys"]), "public parts only"


def test_memory_storage_refuses_several_workers(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "i", storage="memory://", workers=2)
    result = live.cli("serve", "--workers", "2", "--bind", f"127.0.0.1:{live.port}")
    assert result.returncode == 1 and "memory:// storage is per process" in result.stderr


def test_default_issuer_follows_a_loopback_bind(tmp_path: Path) -> None:
    live = LiveServer(tmp_path / "instance", storage=f"sqlite:///{tmp_path}/u.db", workers=1)
    env = live.env()
    del env["UAUTH_ISSUER"]
    live.env = lambda: env  # type: ignore[method-assign]
    live.start()
    try:
        meta = requests.get(live.url + "/.well-known/openid-configuration", timeout=5).json()
        named = f"http://localhost:{live.port}"  # a name: passkeys refuse an IP address
        assert meta["issuer"] == named
        assert meta["token_endpoint"] == named + "/token"
        check = live.cli("check", "--url", live.url)  # the same rule: no issuer to configure
        assert check.returncode == 0, check.stdout + check.stderr
        assert "deployment works" in check.stdout
    finally:
        live.stop()
