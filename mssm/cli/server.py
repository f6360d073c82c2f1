"""`mssm server`: run the MSSM server from a TOML config or in dev mode."""

from __future__ import annotations

import click

from mssm.cli.options import Command


@click.command("server", cls=Command)
@click.option(
    "-config",
    "--config",
    "config_path",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="TOML configuration file (listener, storage, audit...).",
)
@click.option(
    "-dev",
    "--dev",
    is_flag=True,
    help="Dev mode: in-memory storage, already unsealed, plain HTTP on "
    "loopback, root token printed. Never use it for real secrets.",
)
@click.option(
    "-dev-root-token-id",
    "--dev-root-token-id",
    default="",
    envvar="MSSM_DEV_ROOT_TOKEN_ID",
    metavar="TOKEN",
    help="Dev mode: use this root token instead of a random one "
    "[env MSSM_DEV_ROOT_TOKEN_ID].",
)
@click.option(
    "-dev-listen-address",
    "--dev-listen-address",
    default="",
    envvar="MSSM_DEV_LISTEN_ADDRESS",
    metavar="HOST:PORT",
    help="Dev mode: loopback address to listen on [default 127.0.0.1:8200, "
    "env MSSM_DEV_LISTEN_ADDRESS].",
)
def server_command(
    config_path: str | None,
    dev: bool,
    dev_root_token_id: str,
    dev_listen_address: str,
) -> int:
    """Run the server until SIGINT or SIGTERM.

    A production server starts sealed: run `mssm operator init` once, then
    `mssm operator unseal` with enough key shares after every start.
    """
    if not dev and not config_path:
        raise click.UsageError("missing -config FILE.toml (or -dev for dev mode)")

    # Imported here so that client commands do not load the server stack.
    from mssm.http.server import serve

    return serve(
        config_path=config_path,
        dev=dev,
        dev_root_token_id=dev_root_token_id,
        dev_listen_address=dev_listen_address,
    )
