"""Read request data from KEY=VALUE arguments, files and stdin, as Vault does.

- KEY=VALUE sets a field to the string VALUE.
- KEY=@FILE sets it to the contents of FILE.
- KEY=- sets it to everything read from stdin.
- A lone "-" reads a JSON object from stdin and merges its fields.

Error messages name the argument by position and the key, never the value,
because the value is often the secret itself.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

# The argument that stands for standard input.
STDIN = "-"


def read_file(path: str, description: str) -> str:
    """Return a text file's contents; a failure is a local error (exit 1).

    description names the content in errors, e.g. "the policy".
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise click.ClickException(
            f"cannot read {description} from {path}: {exc.strerror}"
        ) from None
    except UnicodeDecodeError:
        raise click.ClickException(
            f"cannot read {description} from {path}: it is not UTF-8 text"
        ) from None


def read_stdin(purpose: str) -> str:
    try:
        return sys.stdin.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read {purpose} from stdin: {exc}") from None


def read_json_object(text: str, source: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.ClickException(
            f"invalid JSON in {source} at line {exc.lineno}, column {exc.colno}: "
            "expected a JSON object"
        ) from None
    if not isinstance(value, dict):
        raise click.ClickException(
            f"invalid JSON in {source}: expected an object, got {type(value).__name__}"
        )
    return value


def parse_data(args: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Turn KEY=VALUE, KEY=@FILE, KEY=- and - arguments into a request body."""
    data: dict[str, Any] = {}
    stdin_used = False
    for position, arg in enumerate(args, start=1):
        if arg == STDIN or arg.endswith("=" + STDIN):
            if stdin_used:
                raise click.ClickException("stdin ('-') can be used only once")
            stdin_used = True
        if arg == STDIN:
            data.update(read_json_object(read_stdin("data"), "stdin"))
            continue
        key, value = _split_pair(arg, position)
        data[key] = _resolve_value(key, value)
    return data


def _split_pair(arg: str, position: int) -> tuple[str, str]:
    key, sep, value = arg.partition("=")
    if not sep or not key:
        raise click.ClickException(
            f"invalid data argument #{position}: expected KEY=VALUE, "
            "KEY=@FILE, KEY=- or -"
        )
    return key, value


def _resolve_value(key: str, value: str) -> str:
    if value == STDIN:
        return read_stdin(f"the value of field {key}")
    if value.startswith("@"):
        return read_file(value[1:], f"the value of field {key}")
    return value


def parse_pairs(args: tuple[str, ...] | list[str], flag: str) -> dict[str, str]:
    """Parse repeated -flag=KEY=VALUE options (custom metadata, options)."""
    pairs: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise click.ClickException(
                f"invalid {flag} value {arg!r}: expected KEY=VALUE"
            )
        pairs[key] = value
    return pairs
