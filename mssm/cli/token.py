"""`mssm token`: create, look up, renew and revoke tokens; list capabilities."""

from __future__ import annotations

from typing import Any

import click

from mssm.cli.inputs import parse_pairs
from mssm.cli.options import (
    Group,
    command_options,
    current_client,
    current_output,
    field_option,
)
from mssm.cli.output import print_json, print_secret, print_success


@click.group("token", cls=Group)
def token_command() -> None:
    """Create and manage tokens."""


def _token_options(func: Any) -> Any:
    """Add the token-creation flags, in the order --help lists them."""
    options = [
        click.option(
            "-policy",
            "--policy",
            "policies",
            multiple=True,
            metavar="NAME",
            help="Policy to attach; repeat or comma-separate for more. "
            "Default: the policies of the calling token.",
        ),
        click.option("-ttl", "--ttl", metavar="DURATION", help="Initial TTL, e.g. 1h."),
        click.option(
            "-explicit-max-ttl",
            "--explicit-max-ttl",
            metavar="DURATION",
            help="Hard limit on the token's life, even when renewed.",
        ),
        click.option(
            "-period",
            "--period",
            metavar="DURATION",
            help="Make a periodic token: each renewal resets its TTL to this.",
        ),
        click.option(
            "-orphan",
            "--orphan",
            is_flag=True,
            help="Create a token with no parent, so revoking the caller "
            "leaves it alive (needs sudo on auth/token/create).",
        ),
        click.option(
            "-use-limit",
            "--use-limit",
            type=click.IntRange(min=0),
            help="Number of uses before the token is revoked (0: no limit).",
        ),
        click.option(
            "-display-name", "--display-name", help="Name shown in audit logs."
        ),
        click.option(
            "-renewable",
            "--renewable",
            type=click.BOOL,
            default=None,
            help="Whether the token can be renewed (true or false).",
        ),
        click.option(
            "-no-default-policy",
            "--no-default-policy",
            is_flag=True,
            help="Do not attach the default policy.",
        ),
        click.option(
            "-metadata",
            "--metadata",
            multiple=True,
            metavar="KEY=VALUE",
            help="Metadata pair stored with the token; repeat for more.",
        ),
        click.option(
            "-type",
            "--type",
            "token_type",
            type=click.Choice(["service", "batch"]),
            help="Token type.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _split_policies(values: tuple[str, ...]) -> list[str]:
    return [name.strip() for value in values for name in value.split(",") if name]


@token_command.command("create")
@_token_options
@command_options
@field_option
def create_command(
    policies: tuple[str, ...],
    ttl: str | None,
    explicit_max_ttl: str | None,
    period: str | None,
    orphan: bool,
    use_limit: int | None,
    display_name: str | None,
    renewable: bool | None,
    no_default_policy: bool,
    metadata: tuple[str, ...],
    token_type: str | None,
) -> None:
    """Create a child token of the calling token (or an orphan).

    -wrap-ttl=5m returns a single-use wrapping token instead; the receiver
    gets the new token with `mssm unwrap`.
    """
    body: dict[str, Any] = {
        "ttl": ttl,
        "explicit_max_ttl": explicit_max_ttl,
        "period": period,
        "num_uses": use_limit,
        "display_name": display_name,
        "renewable": renewable,
        "type": token_type,
    }
    body = {key: value for key, value in body.items() if value is not None}
    if policies:
        body["policies"] = _split_policies(policies)
    if orphan:
        body["no_parent"] = True
    if no_default_policy:
        body["no_default_policy"] = True
    if metadata:
        body["meta"] = parse_pairs(metadata, "-metadata")

    response = current_client().write("auth/token/create", body)
    print_secret(response, current_output())


@token_command.command("lookup")
@click.argument("token", required=False)
@click.option(
    "-accessor",
    "--accessor",
    is_flag=True,
    help="TOKEN is an accessor, not a token.",
)
@command_options
@field_option
def lookup_command(token: str | None, accessor: bool) -> None:
    """Print the properties of TOKEN (default: the calling token)."""
    client = current_client()
    if accessor:
        if not token:
            raise click.UsageError("-accessor needs the accessor as an argument")
        response = client.write("auth/token/lookup-accessor", {"accessor": token})
    elif token:
        response = client.write("auth/token/lookup", {"token": token})
    else:
        response = client.read("auth/token/lookup-self")
    print_secret(response, current_output())


@token_command.command("renew")
@click.argument("token", required=False)
@click.option(
    "-increment",
    "-i",
    "--increment",
    metavar="DURATION",
    help="Requested new TTL, e.g. 1h; the server may grant less.",
)
@click.option("-accessor", "--accessor", is_flag=True, help="TOKEN is an accessor.")
@command_options
@field_option
def renew_command(token: str | None, increment: str | None, accessor: bool) -> None:
    """Renew TOKEN (default: the calling token) and print its new TTL."""
    body: dict[str, Any] = {"increment": increment} if increment else {}
    client = current_client()
    if accessor:
        if not token:
            raise click.UsageError("-accessor needs the accessor as an argument")
        response = client.write(
            "auth/token/renew-accessor", {**body, "accessor": token}
        )
    elif token:
        response = client.write("auth/token/renew", {**body, "token": token})
    else:
        response = client.write("auth/token/renew-self", body)
    print_secret(response, current_output())


@token_command.command("revoke")
@click.argument("token", required=False)
@click.option("-accessor", "--accessor", is_flag=True, help="TOKEN is an accessor.")
@click.option(
    "-self", "--self", "revoke_self", is_flag=True, help="Revoke the calling token."
)
@click.option(
    "-mode",
    "--mode",
    type=click.Choice(["orphan"]),
    help="orphan: revoke only this token and keep its children, as orphans.",
)
@command_options
def revoke_command(
    token: str | None, accessor: bool, revoke_self: bool, mode: str | None
) -> None:
    """Revoke a token, its child tokens and every lease they created."""
    client = current_client()
    if revoke_self:
        if token or accessor:
            raise click.UsageError("-self takes no TOKEN and no -accessor")
        client.write("auth/token/revoke-self")
    elif not token:
        raise click.UsageError("missing TOKEN (or use -self)")
    elif accessor:
        client.write("auth/token/revoke-accessor", {"accessor": token})
    elif mode == "orphan":
        client.write("auth/token/revoke-orphan", {"token": token})
    else:
        client.write("auth/token/revoke", {"token": token})
    print_success("Revoked token (if it existed)", current_output())


@token_command.command("capabilities")
@click.argument("args", nargs=-1, metavar="[TOKEN] PATH")
@command_options
def capabilities_command(args: tuple[str, ...]) -> None:
    """Print what a token (default: the calling token) may do on PATH."""
    if len(args) not in (1, 2):
        raise click.UsageError("expected [TOKEN] PATH")
    path = args[-1].strip("/")
    client = current_client()
    if len(args) == 2:
        body = {"token": args[0], "paths": [path]}
        response = client.write("sys/capabilities", body)
    else:
        response = client.write("sys/capabilities-self", {"paths": [path]})

    fields = {**(response or {}), **((response or {}).get("data") or {})}
    capabilities = fields.get(path, fields.get("capabilities")) or []
    if current_output().is_json:
        print_json(capabilities)
        return
    click.echo(", ".join(sorted(capabilities)))
