"""The request and response that travel between the HTTP layer, the core and
the engines. Nothing here depends on HTTP framing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

READ = "read"
CREATE = "create"
UPDATE = "update"
DELETE = "delete"
LIST = "list"
PATCH = "patch"
OPERATIONS = (READ, CREATE, UPDATE, DELETE, LIST, PATCH)


@dataclass
class Request:
    operation: str
    path: str
    data: dict[str, Any] = field(default_factory=dict)
    request_id: str = ""
    client_token: str | None = None
    remote_addr: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    wrap_ttl: int | None = None
    # Filled in by the core while routing and authenticating.
    mount_point: str = ""
    mount_type: str = ""
    mount_accessor: str = ""
    relative_path: str = ""
    token: Any = None
    params: dict[str, str] = field(default_factory=dict)
    tls_peer_cert: bytes | None = None
    # The audit broker's hashed auth and request sections, per device path.
    audit_sections: dict[str, Any] = field(
        default_factory=dict, repr=False, compare=False
    )

    @property
    def token_accessor(self) -> str:
        return getattr(self.token, "accessor", "") if self.token else ""


@dataclass
class SecretLease:
    """A dynamic secret's lease terms, as an engine returns them.

    internal holds what the engine needs later to renew or revoke the secret
    (for example the database username); it is stored through the barrier
    and never sent to the client.
    """

    ttl: int
    max_ttl: int = 0
    renewable: bool = True
    internal: dict[str, Any] = field(default_factory=dict)


@dataclass
class Response:
    data: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    auth: dict[str, Any] | None = None
    secret: SecretLease | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Copy every data field to the top level too, as Vault does for sys/.
    top_level: bool = False
    # A body sent as it is (JWKS, metrics) instead of the Vault envelope.
    raw_body: bytes | None = None
    content_type: str = "application/json"
    lease_id: str = ""
    lease_duration: int = 0
    renewable: bool = False
    wrap_info: dict[str, Any] | None = None
    mount_type: str = ""

    @property
    def empty(self) -> bool:
        return (
            self.data is None
            and self.auth is None
            and not self.warnings
            and self.raw_body is None
            and self.wrap_info is None
            and not self.lease_id
        )
