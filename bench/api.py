"""A small client for the Vault HTTP API that MSSM and OpenBao both speak."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

REQUEST_TIMEOUT_S = 120


class Unavailable(Exception):
    """The server lacks what a scenario needs: the reason is shown in the report."""


@dataclass
class ApiResponse:
    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def data(self) -> dict[str, Any]:
        return self.body.get("data") or {}

    def describe(self) -> str:
        errors = self.body.get("errors")
        detail = "; ".join(str(error) for error in errors) if errors else ""
        return f"HTTP {self.status}" + (f": {detail}" if detail else "")


class VaultAPI:
    def __init__(self, base_url: str, verify: str | bool = True) -> None:
        self.base_url = base_url
        self.token = ""
        self._session = requests.Session()
        # Proxy and CA bundle variables of the environment must not apply to
        # loopback servers with their own self-signed certificate.
        self._session.trust_env = False
        self._session.verify = verify

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> ApiResponse:
        headers = {}
        if token or self.token:
            headers["X-Vault-Token"] = token or self.token
        response = self._session.request(
            method,
            f"{self.base_url}/v1/{path}",
            json=body,
            headers=headers,
            timeout=REQUEST_TIMEOUT_S,
        )
        try:
            parsed = response.json() if response.content else {}
        except ValueError:
            parsed = {"errors": [response.text[:200]]}
        return ApiResponse(
            response.status_code, parsed if isinstance(parsed, dict) else {}
        )

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> ApiResponse:
        """Send a request that a scenario depends on; raise Unavailable if it fails."""
        response = self.request(method, path, body)
        if not response.ok:
            raise Unavailable(f"{method} {path} returned {response.describe()}")
        return response

    def raw_body(self, method: str, path: str) -> bytes:
        """Return the response body as sent, to size the floor's fixed response."""
        response = self._session.request(
            method,
            f"{self.base_url}/v1/{path}",
            headers={"X-Vault-Token": self.token},
            timeout=REQUEST_TIMEOUT_S,
        )
        return response.content

    def close(self) -> None:
        self._session.close()
