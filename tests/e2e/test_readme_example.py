"""Run the README's end-to-end example as written: start a TLS server from a
config file with the `mssm` command, then init, unseal, store a pepper,
read it back with hvac, and seal."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.http.certs import make_pki
from tests.server import ROOT, free_port

README_HEADING = "### End-to-end with hvac"


def readme_example() -> str:
    """Return the first indented code block after the example's heading
    that imports hvac."""
    text = (ROOT / "README.md").read_text()
    assert README_HEADING in text, "the README lost its end-to-end example"
    section = text.split(README_HEADING, 1)[1]
    for block in re.findall(r"\n\n((?:    .*\n|\n)+)", section):
        lines = [line[4:] for line in block.splitlines()]
        code = "\n".join(lines).strip() + "\n"
        if "import hvac" in code:
            return code
    raise AssertionError("no hvac code block under the end-to-end heading")


def start_server(directory: Path) -> tuple[subprocess.Popen, int, Path]:
    pki = make_pki(directory)
    port = free_port()
    config = directory / "mssm.toml"
    config.write_text(
        "[listener]\n"
        f'address = "127.0.0.1:{port}"\n'
        f'tls_cert_file = "{pki.server_cert}"\n'
        f'tls_key_file = "{pki.server_key}"\n'
        "[storage]\n"
        'type = "sqlite"\n'
        f'path = "{directory / "mssm.db"}"\n'
    )
    log = open(directory / "server.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "mssm", "server", "-config", str(config)],
        stdout=log,
        stderr=log,
        cwd=ROOT,
    )
    wait_ready(proc, port, pki.ca_cert, directory / "server.log")
    return proc, port, pki.ca_cert


def wait_ready(proc: subprocess.Popen, port: int, ca: Path, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()}")
        try:
            url = f"https://127.0.0.1:{port}/v1/sys/seal-status"
            requests.get(url, timeout=1, verify=str(ca))
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not start:\n{log.read_text()}")


def test_readme_example_runs(tmp_path: Path) -> None:
    proc, port, ca = start_server(tmp_path)
    try:
        code = readme_example()
        assert "https://127.0.0.1:8200" in code
        code = code.replace("127.0.0.1:8200", f"127.0.0.1:{port}")
        code = code.replace('verify="ca.pem"', f'verify="{ca}"')
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - our own README

        assert output.getvalue().strip() == "{'pepper': 'p'}"
        status = requests.get(
            f"https://127.0.0.1:{port}/v1/sys/seal-status", timeout=5, verify=str(ca)
        ).json()
        assert status["initialized"] is True
        assert status["sealed"] is True
        assert (status["t"], status["n"]) == (3, 5)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
