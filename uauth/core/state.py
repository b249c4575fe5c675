"""The provider's services for one app: storage, keys, clock, settings and the caches over them.

Built once per worker by the wiring (:class:`uauth.extension.UAuth`) and passed down as an
argument; nothing in ``core`` looks it up from Flask. The web layer extends it with the Authlib
server (:class:`uauth.web.state.AppState`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from uauth.core.backchannel import Backchannel
from uauth.core.claims import SubjectIndex
from uauth.core.clients import ClientCache
from uauth.core.factors import Factors
from uauth.core.keyring import KeyRing
from uauth.core.mail import Mailer
from uauth.core.metrics import NullMetrics
from uauth.core.settings import Settings
from uauth.core.throttle import Throttle
from uauth.core.users import UserDirectory
from uauth.core.verified import VerifiedTokens
from uauth.storage import Clock
from uauth.storage import Store


@dataclass
class State:
    """Everything one app's provider needs, built once per worker in :meth:`UAuth.init_app`."""

    issuer: str
    store: Store
    #: The shared signing keys; a :class:`~uauth.core.keys.KeySet` kept fresh from storage.
    keys: KeyRing
    clock: Clock
    #: The validated ``UAUTH_*`` values, typed and frozen.
    settings: Settings
    #: Documents that only change with the key set (discovery, JWKS), built on first use.
    cache: dict[str, Any] = field(default_factory=dict)
    #: Prometheus counters, or a stand-in that does nothing when ``UAUTH_METRICS`` is off.
    metrics: NullMetrics = field(default_factory=NullMetrics)
    users: UserDirectory = field(init=False)
    backchannel: Backchannel = field(init=False)
    #: Pairwise subjects: the instance salt and the sub -> user index cache (claims.py).
    subjects: SubjectIndex = field(init=False)
    #: Failure counters for logins and client authentication (throttle.py).
    throttle: Throttle = field(init=False)
    #: Clients this worker looked up recently (clients.ClientCache).
    clients: ClientCache = field(init=False)
    #: Outgoing mail (mail.Mailer): reset, verification, invitation and sign-up links.
    mailer: Mailer = field(init=False)
    #: Saves each audit event for the console's audit view (audittrail.py); None: not kept.
    keep_audit: Callable[[dict[str, Any]], None] | None = None
    #: Passkeys, TOTP devices and recovery codes (factors.py).
    factors: Factors = field(init=False)
    #: ``fetch_json(url)`` of the safe outbound fetcher (jwks_uri, metadata documents).
    fetch_json: Callable[[str], Any] | None = None
    #: Access tokens this worker verified or signed (verified.py): no second signature check.
    verified: VerifiedTokens = field(default_factory=VerifiedTokens)

    def now(self) -> int:
        return int(self.clock())
