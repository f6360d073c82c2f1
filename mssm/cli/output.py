"""Render API responses as JSON or as Vault-style "Key  Value" tables."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import click

FORMATS = ("table", "json")

# Integer fields that hold seconds; tables show them as durations ("1h30m").
DURATION_KEYS = frozenset(
    {
        "ttl",
        "creation_ttl",
        "explicit_max_ttl",
        "period",
        "lease_duration",
        "token_duration",
        "wrapping_token_ttl",
        "default_lease_ttl",
        "max_lease_ttl",
        "refresh_interval",
    }
)

# Column gap, as in Vault's tables.
_PADDING = 4


@dataclass
class Output:
    """The -format and -field choices of the running command."""

    format: str = "table"
    field: str | None = None

    @property
    def is_json(self) -> bool:
        return self.format == "json"


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False))


def format_value(key: str, value: Any) -> str:
    """Format one table cell: Go-like lists and maps, durations for TTLs."""
    if key in DURATION_KEYS and isinstance(value, int) and not isinstance(value, bool):
        return format_duration(value)
    return _format_plain(value)


def _format_plain(value: Any) -> str:
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else "n/a"
    if isinstance(value, list | tuple):
        return "[" + " ".join(_format_nested(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{k}:{_format_nested(v)}" for k, v in sorted(value.items()))
        return "map[" + " ".join(items) + "]"
    return str(value)


def _format_nested(value: Any) -> str:
    # Inside a list or map an empty string stays empty, as Go prints it.
    return "" if value == "" else _format_plain(value)


def format_duration(seconds: int) -> str:
    """Format seconds like Go's compact durations: 0s, 45s, 1m30s, 768h."""
    if seconds <= 0:
        return f"{seconds}s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{amount}{unit}" for amount, unit in parts if amount)


def columns(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Lay out rows under a header and a dashed rule, columns padded."""
    all_rows = [list(header), ["-" * len(name) for name in header]]
    all_rows += [list(row) for row in rows]
    widths = [max(len(row[i]) for row in all_rows) for i in range(len(header))]
    lines = []
    for row in all_rows:
        cells = [
            cell.ljust(width + _PADDING)
            for cell, width in zip(row, widths, strict=True)
        ]
        cells[-1] = row[-1]
        lines.append("".join(cells).rstrip())
    return lines


def print_columns(header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    for line in columns(header, rows):
        click.echo(line)


def print_table(rows: Iterable[tuple[str, Any]]) -> None:
    """Print a "Key  Value" table; values are formatted by format_value."""
    cells = [(key, format_value(key, value)) for key, value in rows]
    print_columns(("Key", "Value"), cells)


def print_section(title: str) -> None:
    click.echo(f"== {title} ==")


def print_warnings(response: dict[str, Any] | None) -> None:
    """Print the server's warnings to stderr, so stdout stays parseable."""
    warnings = (response or {}).get("warnings") or []
    if not warnings:
        return
    click.echo("WARNING! The server returned these warnings:\n", err=True)
    for warning in warnings:
        click.echo(f"  * {warning}", err=True)
    click.echo("", err=True)


def auth_rows(auth: dict[str, Any]) -> list[tuple[str, Any]]:
    """Return the rows of a token table (login, token create, renew)."""
    rows = [
        ("token", auth.get("client_token")),
        ("token_accessor", auth.get("accessor")),
        ("token_duration", auth.get("lease_duration")),
        ("token_renewable", auth.get("renewable")),
        ("token_policies", auth.get("token_policies") or []),
        ("identity_policies", auth.get("identity_policies") or []),
        ("policies", auth.get("policies") or []),
    ]
    metadata = auth.get("metadata") or {}
    rows += [(f"token_meta_{key}", value) for key, value in sorted(metadata.items())]
    return rows


def wrap_rows(wrap_info: dict[str, Any]) -> list[tuple[str, Any]]:
    rows = [
        ("wrapping_token", wrap_info.get("token")),
        ("wrapping_accessor", wrap_info.get("accessor")),
        ("wrapping_token_ttl", wrap_info.get("ttl")),
        ("wrapping_token_creation_time", wrap_info.get("creation_time")),
        ("wrapping_token_creation_path", wrap_info.get("creation_path")),
    ]
    if wrap_info.get("wrapped_accessor"):
        rows.append(("wrapped_accessor", wrap_info["wrapped_accessor"]))
    return rows


def data_rows(response: dict[str, Any]) -> list[tuple[str, Any]]:
    """Return lease rows (if any) followed by the data fields, sorted by key."""
    rows: list[tuple[str, Any]] = []
    duration = response.get("lease_duration") or 0
    if response.get("lease_id"):
        rows += [
            ("lease_id", response["lease_id"]),
            ("lease_duration", duration),
            ("lease_renewable", bool(response.get("renewable"))),
        ]
    elif duration > 0:
        rows.append(("refresh_interval", duration))
    data = response.get("data") or {}
    rows += sorted(data.items()) if isinstance(data, dict) else [("data", data)]
    return rows


def secret_rows(response: dict[str, Any]) -> list[tuple[str, Any]]:
    if response.get("wrap_info"):
        return wrap_rows(response["wrap_info"])
    if response.get("auth"):
        return auth_rows(response["auth"])
    return data_rows(response)


def lookup_field(response: dict[str, Any], name: str) -> Any:
    """Return one field of a response the way -field=NAME selects it."""
    for key, value in secret_rows(response):
        if key == name:
            return value
    data = response.get("data")
    if isinstance(data, dict) and name in data:
        return data[name]
    raise click.ClickException(f'field "{name}" is not present in the response')


def print_field(value: Any, output: Output) -> None:
    """Print one value with no table; add a newline only on a terminal.

    Without the trailing newline, $(mssm read -field=x ...) and files
    written by redirection hold the exact value.
    """
    if output.is_json:
        text = json.dumps(value, indent=2)
    elif isinstance(value, str):
        text = value
    else:
        text = _format_plain(value)
    click.echo(text, nl=sys.stdout.isatty())


def print_secret(response: dict[str, Any] | None, output: Output) -> None:
    """Print a response as -format and -field ask: JSON, one field or a table."""
    response = response or {}
    if output.field:
        print_field(lookup_field(response, output.field), output)
        return
    if output.is_json:
        print_json(response)
        return
    print_warnings(response)
    rows = secret_rows(response)
    if rows:
        print_table(rows)


def print_keys(keys: list[str], output: Output) -> None:
    """Print a LIST result: a JSON array, or a "Keys" column."""
    if output.is_json:
        print_json(keys)
        return
    print_columns(("Keys",), [(key,) for key in keys])


def print_success(message: str, output: Output) -> None:
    """Confirm an operation that returns no data (nothing in JSON mode)."""
    if not output.is_json:
        click.echo(f"Success! {message}")


def print_write_result(
    response: dict[str, Any] | None, output: Output, message: str
) -> None:
    """Print what a write returned, or the success message if it was empty."""
    if response is None:
        print_success(message, output)
        return
    has_payload = any(response.get(key) for key in ("data", "auth", "wrap_info"))
    if has_payload or output.is_json or output.field:
        print_secret(response, output)
        return
    print_warnings(response)
    print_success(message, output)
