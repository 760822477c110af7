"""The server's TLS context, from the certificate and key files named in the config."""

from __future__ import annotations

import os
import ssl

from server.config import ConfigError


def _encrypted_key() -> str:
    raise ConfigError(
        "--tls-key: the private key is encrypted; give an unencrypted key file "
        "(readable by the server's user only)"
    )


def server_tls_context(cert_file: str, key_file: str | None = None) -> ssl.SSLContext:
    """A TLS 1.2+ server context. Raises ConfigError naming the file and the problem."""
    for flag, path in (("--tls-cert", cert_file), ("--tls-key", key_file)):
        if path is not None and not os.path.isfile(path):
            raise ConfigError(f"{flag} {path}: no such file")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        # The password callback stops OpenSSL from prompting on the terminal.
        context.load_cert_chain(cert_file, key_file, password=_encrypted_key)
    except ssl.SSLError as exc:
        what = f"{cert_file} with key {key_file}" if key_file else cert_file
        raise ConfigError(
            f"--tls-cert/--tls-key: cannot load {what} ({exc.reason or exc}); expected PEM "
            "files: the certificate (chain) and its private key (or one file holding both)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"--tls-cert/--tls-key: cannot read {exc.filename}: {exc}") from None
    return context
