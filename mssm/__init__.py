"""MSSM, the Minimal Secure Secrets Manager: a server with Vault's HTTP API."""

__version__ = "0.1.0"
