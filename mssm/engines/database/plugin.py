"""The database plugin interface, and the statement templating plugins share.

Operators write the quotes in their statements (`CREATE ROLE "{{name}}"
... PASSWORD '{{password}}'`), as in Vault, so substitution adds none. It
is safe because of what is substituted: generated names contain only
letters, digits, "-", "_" and "." (see templates.py), and passwords are
checked by `check_password_safe` before they reach a statement.
"""

from __future__ import annotations

import abc
import random
import re
from dataclasses import dataclass, field

# Characters that could end or escape a quoted SQL literal or identifier.
UNSAFE_PASSWORD_CHARS = frozenset("'\"\\`")
# Pieces of a secret this long or longer are redacted from error messages.
# Shorter ones are left, so that ordinary words survive; a 3-character piece
# of a 20-character generated password gives little away.
MIN_SECRET_FRAGMENT = 4
_PLACEHOLDER = re.compile(r"\{\{\s*(name|username|password|expiration)\s*\}\}")
PASSWORD_PLACEHOLDER = "{{password}}"  # noqa: S105 - a placeholder, not a secret
_KEYWORD_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")


class DatabaseError(Exception):
    """The database refused or failed an operation.

    The message comes from the database, with every secret the operation
    used replaced by "[redacted]".
    """


class CreateUserError(DatabaseError):
    """Creating a user failed. rolled_back is True when nothing was left behind."""

    def __init__(self, message: str, rolled_back: bool) -> None:
        super().__init__(message)
        self.rolled_back = rolled_back


@dataclass(frozen=True)
class PoolLimits:
    """Bounds of one connection's pool."""

    max_open: int = 4
    # Seconds after which a connection is replaced; 0 keeps the driver's default.
    max_lifetime: int = 0


@dataclass
class NewUser:
    """The values substituted into creation statements."""

    username: str
    password: str
    expiration: str
    statements: list[str]
    rollback_statements: list[str] = field(default_factory=list)


class Database(abc.ABC):
    """One configured connection (with its pool) to a database server."""

    # The maximum user name length the server accepts, in characters.
    max_username_length: int = 63
    default_username_template: str = ""

    @abc.abstractmethod
    async def verify(self) -> None:
        """Connect once and run a trivial query; raise DatabaseError."""

    def user_details(self, statements: list[str], username: str) -> dict[str, object]:
        """Return what revocation needs besides the name (MySQL: the hosts)."""
        return {}

    @abc.abstractmethod
    async def create_user(self, user: NewUser) -> None:
        """Run the creation statements in one transaction; CreateUserError."""

    @abc.abstractmethod
    async def revoke_user(
        self, username: str, statements: list[str], details: dict
    ) -> None:
        """Drop the user; a user that no longer exists counts as revoked."""

    @abc.abstractmethod
    async def renew_user(
        self, username: str, statements: list[str], expiration: str
    ) -> None:
        """Move the user's expiry, running the renew statements if any."""

    @abc.abstractmethod
    async def set_password(
        self, username: str, statements: list[str], password: str
    ) -> None:
        """Change an existing user's password (static roles)."""

    @abc.abstractmethod
    async def rotate_root(self, statements: list[str], password: str) -> None:
        """Change the password of the login this connection uses."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the pool and every connection in it."""


def render(statement: str, values: dict[str, str]) -> str:
    """Substitute {{name}}, {{username}}, {{password}} and {{expiration}}.

    One pass, so a value that happens to contain "{{...}}" is not expanded
    again. Placeholders without a value are left for the database to reject.
    """

    def substitute(match: re.Match) -> str:
        return values.get(match.group(1), match.group(0))

    return _PLACEHOLDER.sub(substitute, statement)


def statement_values(username: str, password: str = "", expiration: str = "") -> dict:
    return {
        "name": username,
        "username": username,
        "password": password,
        "expiration": expiration,
    }


def split_statements(text: str) -> list[str]:
    """Split text on semicolons outside quotes; drop empty statements."""
    statements: list[str] = []
    current: list[str] = []
    quote = ""
    for char in text:
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
            current.append(char)
        elif char == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(char)
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


def check_password_safe(password: str, policy_name: str) -> None:
    """Raise ValueError if password could break out of a quoted literal."""
    bad = sorted({c for c in password if c in UNSAFE_PASSWORD_CHARS or ord(c) < 32})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise ValueError(
            f"password policy {policy_name!r} produced characters that are not "
            f"allowed in database passwords ({shown}); remove quotes, backslashes, "
            "backticks and control characters from its charsets"
        )


def scrub(message: str, secrets: list[str]) -> str:
    """Replace every secret in message, and every piece of one that is
    MIN_SECRET_FRAGMENT characters or longer, with "[redacted]".

    Pieces matter because database errors quote the statement around the
    error position and cut it anywhere: PostgreSQL's "LINE 1: ...", MySQL's
    "near '...'" and tokenizer errors can show half a password.
    """
    hidden = [False] * len(message)
    for secret in filter(None, secrets):
        shortest = min(len(secret), MIN_SECRET_FRAGMENT)
        start = 0
        while start < len(message):
            length = _fragment_length(message, start, secret)
            if length >= shortest:
                hidden[start : start + length] = [True] * length
                start += length
            else:
                start += 1
    return _join_visible(message, hidden)


def _fragment_length(message: str, start: int, secret: str) -> int:
    """Return the length of the longest piece of secret at message[start:]."""
    length = 0
    while start + length < len(message) and (
        message[start : start + length + 1] in secret
    ):
        length += 1
    return length


def _join_visible(message: str, hidden: list[bool]) -> str:
    parts: list[str] = []
    for index, char in enumerate(message):
        if not hidden[index]:
            parts.append(char)
        elif index == 0 or not hidden[index - 1]:
            parts.append("[redacted]")
    return "".join(parts)


def redact_url(url: str) -> str:
    """Hide the literal passwords written into a connection URL.

    Covers "scheme://user:secret@host", the Go DSN "user:secret@tcp(...)"
    and "password=secret". The {{password}} placeholder is shown as written.
    """
    for start, end in sorted(_password_spans(url), reverse=True):
        url = url[:start] + "*****" + url[end:]
    return url


def url_passwords(url: str) -> list[str]:
    """Return the literal passwords written into a connection URL."""
    return [url[start:end].strip("'") for start, end in _password_spans(url)]


def _password_spans(url: str) -> list[tuple[int, int]]:
    spans = [
        match.span(2)
        for match in _KEYWORD_PASSWORD.finditer(url)
        if match.group(2) != PASSWORD_PLACEHOLDER
    ]
    userinfo = _userinfo_password_span(url)
    if userinfo is not None and not any(s <= userinfo[0] < e for s, e in spans):
        spans.append(userinfo)
    return spans


def _userinfo_password_span(url: str) -> tuple[int, int] | None:
    """Return where the password of "user:password@" lies in url.

    It ends at the last "@" of the authority, because an unescaped password
    may contain "@" itself.
    """
    separator = url.find("://")
    begin = separator + 3 if separator >= 0 else 0
    rest = url[begin:]
    # An "@" in the query string (a certificate path) is not the end of
    # the credentials, unless the password itself contains a "?".
    at = rest.partition("?")[0].rfind("@")
    if at < 0:
        at = rest.rfind("@")
    userinfo = rest[:at]
    if at < 0 or (separator < 0 and re.search(r"[\s=]", userinfo)):
        return None
    colon = userinfo.find(":")
    if colon < 0 or userinfo[colon + 1 :] in ("", PASSWORD_PLACEHOLDER):
        return None
    return begin + colon + 1, begin + at


def retry_delay(attempt: int) -> float:
    """Return a jittered wait before retry number attempt: up to 20 ms
    doubled per attempt, at most one second."""
    return random.uniform(0, min(0.02 * 2**attempt, 1.0))
