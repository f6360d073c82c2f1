"""`mssm status`: the seal status, with exit code 2 while sealed (as Vault)."""

from __future__ import annotations

from typing import Any

import click

from mssm.cli.options import Command, command_options, current_client, current_output
from mssm.cli.output import Output, print_json, print_table

EXIT_SEALED = 2


def sys_fields(response: dict[str, Any] | None) -> dict[str, Any]:
    """Return a sys/ response's fields, whether top-level or under "data"."""
    response = response or {}
    data = response.get("data")
    return {**response, **data} if isinstance(data, dict) else dict(response)


def seal_status_rows(status: dict[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [
        ("Seal Type", status.get("type", "shamir")),
        ("Initialized", status.get("initialized")),
        ("Sealed", status.get("sealed")),
        ("Total Shares", status.get("n")),
        ("Threshold", status.get("t")),
    ]
    if status.get("sealed"):
        progress = f"{status.get('progress', 0)}/{status.get('t')}"
        rows += [("Unseal Progress", progress), ("Unseal Nonce", status.get("nonce"))]
    optional = [
        ("Version", "version"),
        ("Storage Type", "storage_type"),
        ("Cluster Name", "cluster_name"),
        ("Cluster ID", "cluster_id"),
    ]
    rows += [(label, status[key]) for label, key in optional if key in status]
    return rows


def print_seal_status(response: dict[str, Any] | None, output: Output) -> None:
    if output.is_json:
        print_json(response)
        return
    print_table(seal_status_rows(sys_fields(response)))


@click.command("status", cls=Command)
@command_options
def status_command() -> None:
    """Print the seal status of the server.

    Exit codes: 0 unsealed, 1 local error, 2 sealed or the request failed.
    """
    response = current_client().read("sys/seal-status")
    print_seal_status(response, current_output())

    if sys_fields(response).get("sealed", True):
        click.get_current_context().exit(EXIT_SEALED)
