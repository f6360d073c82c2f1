"""`mssm login` (store a verified token) and `mssm unwrap`."""

from __future__ import annotations

import click

from mssm.cli.client import Client, Settings, env, write_token_file
from mssm.cli.inputs import STDIN, read_stdin
from mssm.cli.options import (
    Command,
    command_options,
    current_client,
    current_output,
    field_option,
    flags,
)
from mssm.cli.output import print_secret, print_success


def _read_token(token: str | None) -> str:
    if token == STDIN:
        token = read_stdin("the token")
    elif token is None:
        token = click.prompt("Token (will be hidden)", hide_input=True)
    token = token.strip()
    if not token:
        raise click.UsageError("the token is empty")
    return token


@click.command("login", cls=Command)
@click.argument("token", required=False)
@click.option(
    "-no-store",
    "--no-store",
    is_flag=True,
    help="Verify the token but do not write ~/.mssm-token.",
)
@command_options
@field_option
def login_command(token: str | None, no_store: bool) -> None:
    """Verify TOKEN and store it in ~/.mssm-token (mode 0600).

    TOKEN may be "-" to read it from stdin; without it, a hidden prompt reads
    it. MSSM_TOKEN, if set, still takes precedence over the file.
    """
    output = current_output()
    token = _read_token(token)
    settings = Settings.load(flags())
    settings.token = token
    response = Client(settings).read("auth/token/lookup-self")
    data = (response or {}).get("data") or {}

    if not no_store:
        path = write_token_file(token)
        if not output.field:
            print_success(f"Token verified and stored in {path}.\n", output)
    if env("TOKEN"):
        click.echo(
            "WARNING! MSSM_TOKEN or VAULT_TOKEN is set; later commands use it "
            "instead of the stored token until it is unset.",
            err=True,
        )
    auth = {
        "client_token": token,
        "accessor": data.get("accessor"),
        "lease_duration": data.get("ttl"),
        "renewable": data.get("renewable"),
        "token_policies": data.get("policies"),
        "policies": data.get("policies"),
        "metadata": data.get("meta"),
    }
    print_secret({"auth": auth}, output)


@click.command("unwrap", cls=Command)
@click.argument("token", required=False)
@command_options
@field_option
def unwrap_command(token: str | None) -> None:
    """Print the response wrapped in TOKEN (default: the calling token).

    A wrapping token works once: after this it is revoked.
    """
    client = current_client()
    # The wrapping token authenticates the request itself, so unwrapping
    # needs no other token.
    response = client.request("PUT", "sys/wrapping/unwrap", json={}, token=token)
    print_secret(response, current_output())
