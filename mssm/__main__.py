"""Run the CLI with `python -m mssm`."""

from mssm.cli.main import main

main(prog_name="mssm")
