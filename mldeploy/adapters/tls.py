"""The CA bundle our own HTTPS clients trust: the one the standard variables name (REQUESTS_CA_BUNDLE,
SSL_CERT_FILE — what the Azure SDKs and requests read), else the system's. One rule for every client, so a
private CA (and the tests' doubles) is trusted the same way everywhere."""

from __future__ import annotations

import os
import ssl


def ca_bundle() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE"))
