"""Notes MCP: a small MCP server (the official ``mcp`` SDK, streamable HTTP) whose tools only
answer requests carrying an access token uauth issued for this very resource.

The SDK's token-verifier hook calls uauth's :class:`~uauth.resource.TokenValidator`, which
knows only the issuer URL (discovery, the JWKS, cached) and checks the signature, ``iss``,
``exp`` and that ``aud`` is this server's resource URL (RFC 8707): a token minted for another
resource is refused. The SDK serves the RFC 9728 protected-resource metadata that sends MCP
clients to uauth.

Run (see README.md in this folder)::

    UAUTH_ISSUER=http://127.0.0.1:5000 MCP_RESOURCE=http://127.0.0.1:8000/mcp \\
        python -m examples.mcp.server --port 8000
"""

from __future__ import annotations

import argparse
import os
import threading
from typing import Any

import anyio.to_thread

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from uauth.resource import InvalidToken
from uauth.resource import KeysUnavailable
from uauth.resource import TokenValidator

#: The scope the tools need; configure the resource with it in uauth (UAUTH_RESOURCES).
SCOPE = "notes"


class UAuthTokenVerifier:
    """The SDK's ``TokenVerifier``: a uauth access token for ``resource``, or None."""

    def __init__(self, issuer: str, resource: str) -> None:
        self.resource = resource
        self.validator = TokenValidator(issuer, audience=resource)

    async def verify_token(self, token: str) -> AccessToken | None:
        try:  # the first call fetches discovery and the JWKS: off the event loop
            claims: dict[str, Any] = await anyio.to_thread.run_sync(self.validator.validate,
                                                                    token)
        except (InvalidToken, KeysUnavailable):
            return None
        return AccessToken(token=token, client_id=str(claims["client_id"]),
                           scopes=str(claims.get("scope", "")).split(),
                           expires_at=int(claims["exp"]), resource=self.resource,
                           subject=str(claims["sub"]), claims={"iss": claims["iss"]})


def create_server(issuer: str, resource: str) -> MCPServer:
    notes: dict[str, list[str]] = {}
    lock = threading.Lock()
    server = MCPServer(
        "Notes", instructions="Keep short notes for the signed-in person.",
        token_verifier=UAuthTokenVerifier(issuer, resource),
        auth=AuthSettings(issuer_url=issuer, resource_server_url=resource,
                          required_scopes=[SCOPE], validate_token_resource=True),
    )

    def owner() -> str:
        from mcp.server.auth.middleware.auth_context import get_access_token

        token = get_access_token()
        return token.subject or token.client_id if token else "-"

    @server.tool()
    def add_note(text: str) -> str:
        """Save a note."""
        with lock:
            notes.setdefault(owner(), []).append(text)
            return f"saved note {len(notes[owner()])}"

    @server.tool()
    def list_notes() -> list[str]:
        """Every note saved so far."""
        with lock:
            return list(notes.get(owner(), []))

    return server


def create_app(issuer: str | None = None, resource: str | None = None) -> Any:
    """The ASGI app (Starlette) serving ``/mcp`` and its protected-resource metadata."""
    issuer = issuer or os.environ.get("UAUTH_ISSUER", "http://127.0.0.1:5000")
    resource = resource or os.environ.get("MCP_RESOURCE", "http://127.0.0.1:8000/mcp")
    return create_server(issuer, resource).streamable_http_app(streamable_http_path="/mcp")


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
