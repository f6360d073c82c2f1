"""`mssm operator`: init, unseal, seal, rotate, key-status, rekey,
generate-root and backup."""

from __future__ import annotations

import base64
import secrets
import string
from typing import Any

import click

from mssm.cli.backup import backup_command
from mssm.cli.client import Client
from mssm.cli.inputs import STDIN, read_stdin
from mssm.cli.options import Group, command_options, current_client, current_output
from mssm.cli.output import Output, print_json, print_success, print_table
from mssm.cli.status import print_seal_status, sys_fields

EXIT_NOT_INITIALIZED = 2

_OTP_ALPHABET = string.ascii_letters + string.digits


@click.group("operator", cls=Group)
def operator_command() -> None:
    """Initialise, unseal, seal and maintain the server's keys."""


operator_command.add_command(backup_command, "backup")


def _read_key_share(key: str | None, prompt: str) -> str:
    """Return a key share from the argument, stdin ("-") or a hidden prompt."""
    if key == STDIN:
        key = read_stdin("the key share")
    elif key is None:
        key = click.prompt(prompt, hide_input=True, prompt_suffix=": ")
    key = key.strip()
    if not key:
        raise click.ClickException("the key share is empty")
    return key


def _shares_options(func: Any) -> Any:
    func = click.option(
        "-key-threshold",
        "--key-threshold",
        type=click.IntRange(1, 255),
        default=3,
        show_default=True,
        help="Number of shares needed to rebuild the unseal key.",
    )(func)
    return click.option(
        "-key-shares",
        "--key-shares",
        type=click.IntRange(1, 255),
        default=5,
        show_default=True,
        help="Number of Shamir shares to split the unseal key into.",
    )(func)


# -- init -------------------------------------------------------------------


@operator_command.command("init")
@_shares_options
@click.option(
    "-status",
    "--status",
    is_flag=True,
    help="Only report whether the server is initialised (exit 0 yes, 2 no).",
)
@command_options
def init_command(key_shares: int, key_threshold: int, status: bool) -> None:
    """Initialise a new server: create the unseal key shares and root token.

    Store each share with a different operator: any KEY_THRESHOLD of them
    unseal the server, and they are never shown again.
    """
    client = current_client()
    if status:
        _init_status(client)
        return
    if key_threshold > key_shares:
        raise click.UsageError(
            f"-key-threshold ({key_threshold}) must not exceed "
            f"-key-shares ({key_shares})"
        )

    body = {"secret_shares": key_shares, "secret_threshold": key_threshold}
    response = sys_fields(client.write("sys/init", body))
    _print_init(response, key_shares, key_threshold, current_output())


def _init_status(client: Client) -> None:
    initialized = bool(sys_fields(client.read("sys/init")).get("initialized"))
    click.echo("MSSM is initialized" if initialized else "MSSM is not initialized")
    if not initialized:
        click.get_current_context().exit(EXIT_NOT_INITIALIZED)


def _print_init(
    response: dict[str, Any], shares: int, threshold: int, output: Output
) -> None:
    keys_b64 = response.get("keys_base64") or []
    if output.is_json:
        print_json(
            {
                "unseal_keys_b64": keys_b64,
                "unseal_keys_hex": response.get("keys") or [],
                "unseal_shares": shares,
                "unseal_threshold": threshold,
                "root_token": response.get("root_token"),
            }
        )
        return

    for number, key in enumerate(keys_b64, start=1):
        click.echo(f"Unseal Key {number}: {key}")
    click.echo(f"\nInitial Root Token: {response.get('root_token')}\n")
    click.echo(
        f"MSSM is initialized with {shares} key shares and a key threshold of "
        f"{threshold}. After every restart it starts sealed, and {threshold} of "
        "these shares must be entered with `mssm operator unseal` to unseal it.\n"
        "Keep the shares with different people in different places: the "
        "server cannot show them again, and without enough of them its data "
        "cannot be decrypted."
    )


# -- unseal and seal ----------------------------------------------------------


@operator_command.command("unseal")
@click.argument("key", required=False)
@click.option(
    "-reset",
    "--reset",
    is_flag=True,
    help="Discard the shares entered so far in this unseal attempt.",
)
@command_options
def unseal_command(key: str | None, reset: bool) -> None:
    """Enter one unseal key share (KEY, "-" for stdin, or a hidden prompt)."""
    client = current_client()
    if reset:
        response = client.write("sys/unseal", {"reset": True})
    else:
        share = _read_key_share(key, "Unseal Key (will be hidden)")
        response = client.write("sys/unseal", {"key": share})
    print_seal_status(response, current_output())


@operator_command.command("seal")
@command_options
def seal_command() -> None:
    """Seal the server: drop the keys from memory until it is unsealed again."""
    current_client().write("sys/seal")
    print_success("MSSM is sealed.", current_output())


# -- encryption key -----------------------------------------------------------


def _key_status_rows(status: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        ("Key Term", status.get("term")),
        ("Install Time", status.get("install_time")),
        ("Encryption Count", status.get("encryptions")),
    ]


@operator_command.command("rotate")
@command_options
def rotate_command() -> None:
    """Add a new encryption key term; values written later use it.

    Values encrypted under older terms stay readable.
    """
    client = current_client()
    client.write("sys/rotate")
    response = client.read("sys/key-status")
    output = current_output()
    if output.is_json:
        print_json(response)
        return
    click.echo("Success! Rotated the encryption key.\n")
    print_table(_key_status_rows(sys_fields(response)))


@operator_command.command("key-status")
@command_options
def key_status_command() -> None:
    """Print the current encryption key term and when it was installed."""
    response = current_client().read("sys/key-status")
    if current_output().is_json:
        print_json(response)
        return
    print_table(_key_status_rows(sys_fields(response)))


# -- rekey ------------------------------------------------------------------


@operator_command.command("rekey")
@click.argument("key", required=False)
@click.option("-init", "--init", is_flag=True, help="Start a rekey operation.")
@click.option("-cancel", "--cancel", is_flag=True, help="Cancel the rekey in progress.")
@click.option(
    "-status", "--status", is_flag=True, help="Print the progress of the rekey."
)
@click.option(
    "-nonce",
    "--nonce",
    metavar="NONCE",
    help="Nonce of the rekey in progress (printed by -init).",
)
@_shares_options
@command_options
def rekey_command(
    key: str | None,
    init: bool,
    cancel: bool,
    status: bool,
    nonce: str | None,
    key_shares: int,
    key_threshold: int,
) -> None:
    """Replace the unseal key shares with a new set.

    \b
    1. mssm operator rekey -init -key-shares=5 -key-threshold=3
    2. Each holder of a current share: mssm operator rekey -nonce=NONCE
       (the share is read from a hidden prompt, or pass it or "-").
    3. When enough current shares are in, the new shares are printed.
    Cancel with: mssm operator rekey -cancel -nonce=NONCE
    """
    if sum((init, cancel, status)) > 1:
        raise click.UsageError("use only one of -init, -cancel and -status")
    client = current_client()
    output = current_output()

    if init:
        body = {"secret_shares": key_shares, "secret_threshold": key_threshold}
        _print_rekey_status(client.write("sys/rekey/init", body), output)
    elif status:
        _print_rekey_status(client.read("sys/rekey/init"), output)
    elif cancel:
        client.delete("sys/rekey/init", {"nonce": nonce} if nonce else None)
        print_success("Canceled the rekey operation.", output)
    else:
        _rekey_update(client, key, nonce, output)


def _rekey_update(
    client: Client, key: str | None, nonce: str | None, output: Output
) -> None:
    if not nonce:
        raise click.UsageError(
            "missing -nonce: pass the nonce printed by `mssm operator rekey -init`"
        )
    share = _read_key_share(key, "Unseal Key (will be hidden)")
    response = client.write("sys/rekey/update", {"key": share, "nonce": nonce})
    fields = sys_fields(response)
    if not fields.get("complete"):
        _print_rekey_status(response, output)
        return
    if output.is_json:
        print_json(response)
        return

    for number, new_key in enumerate(fields.get("keys_base64") or [], start=1):
        click.echo(f"Key {number}: {new_key}")
    click.echo(
        f"\nOperation nonce: {fields.get('nonce')}\n\nThe unseal key is rekeyed. "
        "The old shares no longer work; hand each new share to its holder."
    )


def _print_rekey_status(response: dict[str, Any] | None, output: Output) -> None:
    if output.is_json:
        print_json(response)
        return
    status = sys_fields(response)
    print_table(
        [
            ("Nonce", status.get("nonce")),
            ("Started", status.get("started")),
            ("Rekey Progress", f"{status.get('progress')}/{status.get('required')}"),
            ("New Shares", status.get("n")),
            ("New Threshold", status.get("t")),
        ]
    )


# -- generate-root ----------------------------------------------------------


@operator_command.command("generate-root")
@click.argument("key", required=False)
@click.option("-init", "--init", is_flag=True, help="Start a root token generation.")
@click.option(
    "-generate-otp",
    "--generate-otp",
    is_flag=True,
    help="Print a new one-time password of the length the server expects.",
)
@click.option(
    "-otp", "--otp", metavar="OTP", help="One-time password (-init, -decode)."
)
@click.option(
    "-nonce", "--nonce", metavar="NONCE", help="Nonce of the generation in progress."
)
@click.option(
    "-decode",
    "--decode",
    metavar="ENCODED",
    help="Decode this encoded root token with -otp; no request is sent.",
)
@click.option(
    "-cancel", "--cancel", is_flag=True, help="Cancel the generation in progress."
)
@click.option(
    "-status", "--status", is_flag=True, help="Print the progress of the generation."
)
@command_options
def generate_root_command(
    key: str | None,
    init: bool,
    generate_otp: bool,
    otp: str | None,
    nonce: str | None,
    decode: str | None,
    cancel: bool,
    status: bool,
) -> None:
    """Create a new root token from a quorum of unseal key shares.

    \b
    1. OTP=$(mssm operator generate-root -generate-otp)
    2. mssm operator generate-root -init -otp="$OTP"
    3. Each share holder: mssm operator generate-root -nonce=NONCE
    4. mssm operator generate-root -decode=ENCODED_TOKEN -otp="$OTP"
    """
    if sum((init, generate_otp, bool(decode), cancel, status)) > 1:
        raise click.UsageError(
            "use only one of -init, -generate-otp, -decode, -cancel and -status"
        )
    if decode is not None:
        click.echo(decode_root_token(decode, _require_otp(otp)))
        return

    client = current_client()
    output = current_output()
    if generate_otp:
        click.echo(_new_otp(client))
    elif init:
        body = {"otp": _require_otp(otp)}
        response = client.write("sys/generate-root/attempt", body)
        _print_root_status(response, output)
    elif cancel:
        client.delete("sys/generate-root/attempt")
        print_success("Canceled the root token generation.", output)
    elif status:
        _print_root_status(client.read("sys/generate-root/attempt"), output)
    else:
        _generate_root_update(client, key, nonce, output)


def _require_otp(otp: str | None) -> str:
    if not otp:
        raise click.UsageError(
            "missing -otp: create one with `mssm operator generate-root -generate-otp`"
        )
    return otp


def _new_otp(client: Client) -> str:
    status = sys_fields(client.read("sys/generate-root/attempt"))
    length = status.get("otp_length")
    if not isinstance(length, int) or length <= 0:
        raise click.ClickException(
            "the server did not report an otp_length for root token generation"
        )
    return "".join(secrets.choice(_OTP_ALPHABET) for _ in range(length))


def decode_root_token(encoded: str, otp: str) -> str:
    """Recover the root token: base64-decode it and XOR it with the OTP."""
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except ValueError:
        raise click.ClickException("-decode is not valid base64") from None
    if len(raw) != len(otp):
        raise click.ClickException(
            f"-otp has {len(otp)} characters but the encoded token has "
            f"{len(raw)} bytes; use the OTP given to -init"
        )
    token = bytes(a ^ b for a, b in zip(raw, otp.encode(), strict=True))
    try:
        return token.decode("ascii")
    except UnicodeDecodeError:
        raise click.ClickException(
            "decoding gave no valid token; use the OTP given to -init"
        ) from None


def _generate_root_update(
    client: Client, key: str | None, nonce: str | None, output: Output
) -> None:
    if not nonce:
        raise click.UsageError(
            "missing -nonce: pass the nonce printed by "
            "`mssm operator generate-root -init`"
        )
    share = _read_key_share(key, "Unseal Key (will be hidden)")
    body = {"key": share, "nonce": nonce}
    response = client.write("sys/generate-root/update", body)
    _print_root_status(response, output)


def _print_root_status(response: dict[str, Any] | None, output: Output) -> None:
    if output.is_json:
        print_json(response)
        return
    status = sys_fields(response)
    rows = [
        ("Nonce", status.get("nonce")),
        ("Started", status.get("started")),
        ("Progress", f"{status.get('progress')}/{status.get('required')}"),
        ("Complete", status.get("complete")),
    ]
    if status.get("encoded_token"):
        rows.append(("Encoded Token", status["encoded_token"]))
    if status.get("otp_length"):
        rows.append(("OTP Length", status["otp_length"]))
    print_table(rows)
