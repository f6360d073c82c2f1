"""The `mssm` command: Vault's CLI verbs for an MSSM server.

Exit codes follow Vault's CLI: 0 on success, 1 for a local error (bad
usage, an unreadable file), 2 for an error returned by the server or a
failed connection to it. Every error is one line on stderr.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from mssm import __version__
from mssm.cli.client import APIError
from mssm.cli.options import CONTEXT_SETTINGS, Group

EXIT_LOCAL_ERROR = 1


class MainGroup(Group):
    """The top-level group; maps exceptions to Vault's exit codes."""

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> Any:
        extra.pop("standalone_mode", None)
        try:
            result = super().main(args, prog_name, standalone_mode=False, **extra)
        except APIError as exc:
            _fail(exc.format_message(), exc.exit_code)
        except click.UsageError as exc:
            _fail(_usage_message(exc), EXIT_LOCAL_ERROR)
        except click.ClickException as exc:
            _fail(exc.format_message(), EXIT_LOCAL_ERROR)
        except click.Abort:
            _fail("aborted", EXIT_LOCAL_ERROR)
        except BrokenPipeError:
            sys.exit(EXIT_LOCAL_ERROR)
        sys.exit(result if isinstance(result, int) else 0)


def _fail(message: str, code: int) -> None:
    click.echo(f"Error: {' '.join(message.split())}", err=True)
    sys.exit(code)


def _usage_message(exc: click.UsageError) -> str:
    if exc.ctx is None:
        return exc.format_message()
    return f"{exc.format_message()} (see '{exc.ctx.command_path} -help')"


@click.group(cls=MainGroup, context_settings=CONTEXT_SETTINGS)
def main() -> None:
    """Manage secrets on an MSSM server (a Vault-compatible secrets manager).

    The server address comes from -address or MSSM_ADDR (default
    https://127.0.0.1:8200), the token from MSSM_TOKEN or the file
    ~/.mssm-token that `mssm login` writes. VAULT_ADDR, VAULT_TOKEN and
    VAULT_CACERT are read when the MSSM_ names are unset.
    """


@main.command("version")
def version() -> None:
    """Print the version of this CLI."""
    click.echo(f"MSSM v{__version__}")


_COMMANDS = {
    "mssm.cli.server": ["server"],
    "mssm.cli.status": ["status"],
    "mssm.cli.operator": ["operator"],
    "mssm.cli.kv": ["kv"],
    "mssm.cli.secrets": ["secrets"],
    "mssm.cli.generic": ["read", "write", "list", "delete"],
    "mssm.cli.login": ["login", "unwrap"],
    "mssm.cli.token": ["token"],
    "mssm.cli.policy": ["policy"],
    "mssm.cli.lease": ["lease"],
    "mssm.cli.jwt": ["jwt"],
}


def _register() -> None:
    for module_name, names in _COMMANDS.items():
        module = importlib.import_module(module_name)
        for name in names:
            main.add_command(getattr(module, f"{name}_command"), name)
    _register_audit()


def _register_audit() -> None:
    # mssm/cli/audit.py belongs to the audit feature and may not exist yet.
    try:
        module = importlib.import_module("mssm.cli.audit")
    except ModuleNotFoundError as exc:
        if exc.name != "mssm.cli.audit":
            raise
        return
    for attribute in ("audit", "audit_command"):
        command = getattr(module, attribute, None)
        if isinstance(command, click.Command):
            main.add_command(command, "audit")
            return


_register()
