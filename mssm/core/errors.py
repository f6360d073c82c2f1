"""Errors that map to HTTP responses in Vault's `{"errors": [...]}` shape."""

from __future__ import annotations


class APIError(Exception):
    """An error returned to the client, with Vault's status code for the same case."""

    status = 500

    def __init__(self, *messages: str, status: int | None = None) -> None:
        super().__init__(*messages)
        self.messages = list(messages)
        if status is not None:
            self.status = status
        self.data: dict | None = None
        self.warnings: list[str] = []


class BadRequest(APIError):
    status = 400


class PermissionDenied(APIError):
    status = 403

    def __init__(self, *messages: str) -> None:
        super().__init__(*(messages or ("permission denied",)))


class NotFound(APIError):
    status = 404


class MethodNotAllowed(APIError):
    status = 405


class Conflict(APIError):
    status = 409


class PayloadTooLarge(APIError):
    status = 413


class Sealed(APIError):
    status = 503

    def __init__(self) -> None:
        super().__init__("Vault is sealed")


class ServiceUnavailable(APIError):
    status = 503
