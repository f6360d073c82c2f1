"""`mssm read|write|list|delete PATH`: raw requests to any API path."""

from __future__ import annotations

import click

from mssm.cli.client import not_found
from mssm.cli.inputs import parse_data, parse_pairs
from mssm.cli.options import (
    Command,
    command_options,
    current_client,
    current_output,
    field_option,
)
from mssm.cli.output import (
    print_keys,
    print_secret,
    print_success,
    print_write_result,
)


def _api_path(path: str) -> str:
    path = path.strip()
    if path.startswith("/v1/"):
        path = path[len("/v1/") :]
    return path.lstrip("/")


@click.command("read", cls=Command)
@click.argument("path")
@click.argument("params", nargs=-1)
@command_options
@field_option
def read_command(path: str, params: tuple[str, ...]) -> None:
    """Read PATH (GET); KEY=VALUE arguments are sent as query parameters."""
    target = _api_path(path)
    query = parse_pairs(params, "query parameter") if params else None
    response = current_client().read(target, query)
    if response is None:
        raise not_found(target)
    print_secret(response, current_output())


@click.command("write", cls=Command)
@click.argument("path")
@click.argument("data", nargs=-1)
@click.option(
    "-f",
    "-force",
    "--force",
    "force",
    is_flag=True,
    help="Send the request even with no data (for endpoints that need none).",
)
@command_options
@field_option
def write_command(path: str, data: tuple[str, ...], force: bool) -> None:
    """Write DATA to PATH: KEY=VALUE, KEY=@FILE, KEY=- or - (JSON from stdin)."""
    body = parse_data(data)
    if not body and not force:
        raise click.UsageError("missing data: give KEY=VALUE pairs, or -f to send none")
    target = _api_path(path)
    response = current_client().write(target, body)
    print_write_result(response, current_output(), f"Data written to: {target}")


@click.command("list", cls=Command)
@click.argument("path")
@command_options
def list_command(path: str) -> None:
    """List the keys under PATH (names ending in / hold more keys)."""
    target = _api_path(path)
    response = current_client().list(target)
    keys = ((response or {}).get("data") or {}).get("keys")
    if not keys:
        raise not_found(target)
    print_keys(keys, current_output())


@click.command("delete", cls=Command)
@click.argument("path")
@click.argument("params", nargs=-1)
@command_options
def delete_command(path: str, params: tuple[str, ...]) -> None:
    """Delete PATH; KEY=VALUE arguments are sent as the request body."""
    target = _api_path(path)
    body = parse_data(params) if params else None
    current_client().delete(target, body)
    print_success(f"Data deleted (if it existed) at: {target}", current_output())
