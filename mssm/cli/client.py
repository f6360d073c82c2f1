"""A small HTTP client for MSSM's Vault-compatible API, built on requests.

Settings come from flags first, then MSSM_* environment variables, then
VAULT_* ones, so scripts written for Vault's CLI keep working.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import requests

logger = logging.getLogger(__name__)

DEFAULT_ADDRESS = "https://127.0.0.1:8200"
DEFAULT_TIMEOUT = 60.0
TOKEN_FILE_NAME = ".mssm-token"  # noqa: S105 (a file name, not a secret)

_TRUE_WORDS = ("1", "true", "t", "yes", "y", "on")


class APIError(click.ClickException):
    """An error response from the server, or no response at all (exit code 2)."""

    exit_code = 2

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def not_found(path: str) -> APIError:
    """Return the error for a read or list that found nothing at path."""
    return APIError(f"no value found at {path} (HTTP 404)", 404)


def env(name: str) -> str | None:
    """Return MSSM_<name>, else VAULT_<name>, else None (empty counts as unset)."""
    for prefix in ("MSSM_", "VAULT_"):
        value = os.environ.get(prefix + name)
        if value:
            return value
    return None


def token_file_path() -> Path:
    return Path.home() / TOKEN_FILE_NAME


def read_token_file() -> str | None:
    try:
        token = token_file_path().read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise click.ClickException(
            f"cannot read token file {token_file_path()}: {exc.strerror}"
        ) from None
    return token or None


def write_token_file(token: str) -> Path:
    """Store the token in ~/.mssm-token, readable by the owner only (0600)."""
    path = token_file_path()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise click.ClickException(
            f"cannot write token file {path}: {exc.strerror}"
        ) from None

    # os.open applies the mode only when it creates the file, so an older
    # file with wider permissions is narrowed before the token goes in.
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(token + "\n")
    return path


@dataclass
class Settings:
    """Connection settings after flags and environment are merged."""

    address: str = DEFAULT_ADDRESS
    token: str | None = None
    ca_cert: str | None = None
    skip_verify: bool = False
    timeout: float = DEFAULT_TIMEOUT
    wrap_ttl: str | None = None

    @classmethod
    def load(cls, flags: dict[str, Any]) -> Settings:
        """Merge command-line flags (keys without prefix) over the environment."""
        skip = flags.get("skip_verify")
        if skip is None:
            skip = (env("SKIP_VERIFY") or "").lower() in _TRUE_WORDS
        return cls(
            address=(flags.get("address") or env("ADDR") or DEFAULT_ADDRESS),
            token=env("TOKEN") or read_token_file(),
            ca_cert=flags.get("ca_cert") or env("CACERT"),
            skip_verify=bool(skip),
            timeout=_timeout(env("CLIENT_TIMEOUT")),
            wrap_ttl=flags.get("wrap_ttl") or env("WRAP_TTL"),
        )


def _timeout(value: str | None) -> float:
    if value is None:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value.rstrip("s"))
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise click.ClickException(
            f"invalid MSSM_CLIENT_TIMEOUT {value!r}: expected a number of seconds > 0"
        )
    return seconds


class Client:
    """Send requests to /v1/<path> and turn error responses into APIError."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.address = settings.address.rstrip("/")
        self.session = requests.Session()
        self.session.headers["X-Vault-Request"] = "true"
        self.verify = _verify_setting(settings)

    @property
    def token(self) -> str | None:
        return self.settings.token

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        not_found_ok: bool = False,
    ) -> dict[str, Any] | None:
        """Send one request and return the decoded JSON body (None if empty).

        With not_found_ok, a 404 whose errors list is empty returns None, and
        one that carries data (a deleted KV v2 version) returns the body.
        """
        url = f"{self.address}/v1/{path.lstrip('/')}"
        all_headers = self._headers(token, headers)
        logger.debug("%s /v1/%s", method, path)
        try:
            response = self.session.request(
                method,
                url,
                json=json,
                params=params,
                headers=all_headers,
                timeout=self.settings.timeout,
                # Passed per request: requests lets REQUESTS_CA_BUNDLE override
                # a CA file that is only set on the session.
                verify=self.verify,
            )
        except requests.exceptions.InvalidHeader:
            # requests quotes the rejected value in its message, and that
            # value is usually the token, so the message is written here.
            raise APIError(
                "invalid token or -wrap-ttl: a header value must not contain "
                "control characters or start with whitespace; check MSSM_TOKEN, "
                f"the token given on the command line and ~/{TOKEN_FILE_NAME}"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise APIError(self._connection_message(exc)) from None

        return self._decode(method, path, response, not_found_ok)

    def read(self, path: str, params: dict[str, Any] | None = None) -> dict | None:
        return self.request("GET", path, params=params, not_found_ok=True)

    def write(self, path: str, data: dict[str, Any] | None = None) -> dict | None:
        return self.request("PUT", path, json=data or {})

    def list(self, path: str) -> dict | None:
        return self.request(
            "GET", path.rstrip("/") + "/", params={"list": "true"}, not_found_ok=True
        )

    def delete(self, path: str, data: dict[str, Any] | None = None) -> dict | None:
        return self.request("DELETE", path, json=data)

    def _headers(
        self, token: str | None, extra: dict[str, str] | None
    ) -> dict[str, str]:
        headers: dict[str, str] = {}
        token = token or self.settings.token
        if token:
            headers["X-Vault-Token"] = token
        if self.settings.wrap_ttl:
            headers["X-Vault-Wrap-TTL"] = self.settings.wrap_ttl
        headers.update(extra or {})
        return headers

    def _decode(
        self,
        method: str,
        path: str,
        response: requests.Response,
        not_found_ok: bool,
    ) -> dict[str, Any] | None:
        body = _json_body(response)
        if response.status_code < 400:
            return body

        errors = body.get("errors") if isinstance(body, dict) else None
        if response.status_code == 404 and not_found_ok:
            if isinstance(body, dict) and body.get("data") is not None:
                return body
            if not errors:
                return None
        raise APIError(
            self._error_message(method, path, response, errors),
            response.status_code,
        )

    def _error_message(
        self,
        method: str,
        path: str,
        response: requests.Response,
        errors: object,
    ) -> str:
        if isinstance(errors, list) and errors:
            text = "; ".join(str(error) for error in errors)
        else:
            text = response.reason or "request failed"

        # The server should never echo a credential, but the message goes to
        # a terminal or a CI log, so the token is masked if it ever appears.
        text = " ".join(text.split())
        if self.settings.token:
            text = text.replace(self.settings.token, "<redacted>")
        route = path.split("?", 1)[0].lstrip("/")
        return f"{text} (HTTP {response.status_code}, {method} /v1/{route})"

    def _connection_message(self, exc: requests.exceptions.RequestException) -> str:
        if isinstance(exc, requests.exceptions.SSLError):
            reason = _root_cause(exc)
            message = f"TLS connection to {self.address} failed: {reason}"
            if "CERTIFICATE_VERIFY_FAILED" in reason:
                message += (
                    "; set -ca-cert or MSSM_CACERT to the CA file that signed "
                    "the server certificate"
                )
            return message
        if isinstance(exc, requests.exceptions.Timeout):
            return (
                f"request to {self.address} timed out after {self.settings.timeout:g}s"
            )
        return f"cannot connect to {self.address}: {_root_cause(exc)}"


def _verify_setting(settings: Settings) -> bool | str:
    if settings.skip_verify:
        return False
    if settings.ca_cert:
        if not os.path.isfile(settings.ca_cert):
            raise click.ClickException(
                f"CA certificate file {settings.ca_cert} not found "
                "(set by -ca-cert, MSSM_CACERT or VAULT_CACERT)"
            )
        return settings.ca_cert
    return True


def _json_body(response: requests.Response) -> dict[str, Any] | None:
    if not response.content:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _root_cause(exc: BaseException) -> str:
    """Return the innermost reason, e.g. 'Connection refused'."""
    reason = str(exc)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            reason = current.strerror
        current = _inner_exception(current)
    return " ".join(reason.split())


def _inner_exception(exc: BaseException) -> BaseException | None:
    # requests and urllib3 keep the underlying error in args[0] or .reason,
    # not only in the exception chain, so those are searched as well.
    candidates = [exc.args[0] if exc.args else None, getattr(exc, "reason", None)]
    candidates += [exc.__cause__, exc.__context__]
    for candidate in candidates:
        if isinstance(candidate, BaseException):
            return candidate
    return None
