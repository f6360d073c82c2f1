"""`mssm lease`: renew, revoke and look up leases of dynamic secrets."""

from __future__ import annotations

import click

from mssm.cli.options import (
    Group,
    command_options,
    current_client,
    current_output,
    field_option,
)
from mssm.cli.output import print_json, print_secret, print_success, print_table


@click.group("lease", cls=Group)
def lease_command() -> None:
    """Manage the leases of dynamic secrets."""


@lease_command.command("renew")
@click.argument("lease_id", metavar="ID")
@click.option(
    "-increment",
    "-i",
    "--increment",
    metavar="DURATION",
    help="Requested extension from now, e.g. 1h; the server may grant less "
    "(never past the lease's max TTL).",
)
@command_options
@field_option
def renew_command(lease_id: str, increment: str | None) -> None:
    """Extend lease ID and print its new duration."""
    body = {"lease_id": lease_id}
    if increment:
        body["increment"] = increment
    response = current_client().write("sys/leases/renew", body)
    print_secret(response, current_output())


@lease_command.command("revoke")
@click.argument("lease_id", metavar="ID")
@click.option(
    "-prefix",
    "--prefix",
    is_flag=True,
    help="Revoke every lease whose ID starts with ID, e.g. database/creds/app/.",
)
@click.option(
    "-force",
    "-f",
    "--force",
    is_flag=True,
    help="With -prefix: drop the leases even where revoking the credential "
    "fails (the credential may then stay valid). Needs sudo.",
)
@command_options
def revoke_command(lease_id: str, prefix: bool, force: bool) -> None:
    """Revoke lease ID now; the credential behind it stops working."""
    if force and not prefix:
        raise click.UsageError("-force works only together with -prefix")
    client = current_client()
    prefix_path = lease_id.strip("/")
    if force:
        client.write(f"sys/leases/revoke-force/{prefix_path}")
        message = f"Revoked all leases with prefix: {lease_id} (forced)"
    elif prefix:
        client.write(f"sys/leases/revoke-prefix/{prefix_path}")
        message = f"Revoked all leases with prefix: {lease_id}"
    else:
        client.write("sys/leases/revoke", {"lease_id": lease_id})
        message = f"Revoked lease: {lease_id}"
    print_success(message, current_output())


@lease_command.command("lookup")
@click.argument("lease_id", metavar="ID")
@command_options
def lookup_command(lease_id: str) -> None:
    """Print the issue time, expiry and renewability of lease ID."""
    response = current_client().write("sys/leases/lookup", {"lease_id": lease_id})
    if current_output().is_json:
        print_json(response)
        return
    data = (response or {}).get("data") or {}
    print_table(sorted(data.items()))
