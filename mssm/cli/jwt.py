"""`mssm jwt`: issue and verify JSON Web Tokens with a named signing key."""

from __future__ import annotations

from typing import Any

import click

from mssm.cli.client import APIError
from mssm.cli.inputs import STDIN, read_file, read_json_object, read_stdin
from mssm.cli.options import (
    Group,
    command_options,
    current_client,
    current_output,
    field_option,
    mount_option,
)
from mssm.cli.output import print_secret


@click.group("jwt", cls=Group)
def jwt_command() -> None:
    """Sign and verify JWTs with the keys of the signing-key engine."""


def _read_claims(claims: str) -> dict[str, Any]:
    if claims == STDIN:
        return read_json_object(read_stdin("the claims"), "stdin")
    if claims.startswith("@"):
        path = claims[1:]
        return read_json_object(read_file(path, "the claims"), path)
    return read_json_object(claims, "-claims")


@jwt_command.command("sign")
@click.argument("name")
@click.option(
    "-claims",
    "--claims",
    required=True,
    metavar="JSON|@FILE|-",
    help='Claims as a JSON object, e.g. \'{"sub": "app"}\', from a file '
    "(@FILE) or from stdin (-).",
)
@click.option(
    "-ttl",
    "--ttl",
    metavar="DURATION",
    help="Lifetime of the token (sets exp), e.g. 15m; the key's jwt_max_ttl caps it.",
)
@click.option(
    "-audience",
    "--audience",
    multiple=True,
    metavar="AUD",
    help="Audience (aud claim); repeat for more than one.",
)
@click.option(
    "-not-before",
    "--not-before",
    metavar="DURATION",
    help="Delay before the token becomes valid (sets nbf), e.g. 30s.",
)
@mount_option("transit")
@command_options
@field_option
def sign_command(
    name: str,
    claims: str,
    ttl: str | None,
    audience: tuple[str, ...],
    not_before: str | None,
    mount: str,
) -> None:
    """Issue a JWT signed with key NAME and print it.

    MSSM sets iat, exp and jti itself; use -ttl, -audience and -not-before
    for exp, aud and nbf.
    """
    body: dict[str, Any] = {"claims": _read_claims(claims)}
    if ttl:
        body["ttl"] = ttl
    if audience:
        body["audience"] = audience[0] if len(audience) == 1 else list(audience)
    if not_before:
        body["not_before"] = not_before
    path = f"{mount.strip('/')}/jwt/sign/{name}"
    response = current_client().write(path, body)
    print_secret(response, current_output())


@jwt_command.command("verify")
@click.argument("name")
@click.argument("token", metavar="TOKEN|-")
@click.option("-audience", "--audience", metavar="AUD", help="Required aud value.")
@click.option("-issuer", "--issuer", metavar="ISS", help="Required iss value.")
@mount_option("transit")
@command_options
@field_option
def verify_command(
    name: str, token: str, audience: str | None, issuer: str | None, mount: str
) -> None:
    """Check TOKEN with key NAME and print its claims.

    Exits with 2 when the token is not valid (bad signature, expired, wrong
    audience...). TOKEN may be "-" to read it from stdin, which keeps it out
    of the process list.
    """
    if token == STDIN:
        token = read_stdin("the token").strip()
    body = {"token": token, "audience": audience, "issuer": issuer}
    body = {key: value for key, value in body.items() if value is not None}
    path = f"{mount.strip('/')}/jwt/verify/{name}"
    response = current_client().write(path, body)
    print_secret(response, current_output())

    data = (response or {}).get("data") or {}
    if data.get("valid") is not True:
        reason = data.get("reason") or "the server did not confirm it"
        raise APIError(f"the token is not valid: {reason}")
