"""Secret values out of everything mldeploy shows or stores, in every form they can take: pure.

A value travels as itself, but also JSON- or repr-escaped (a backslash doubles, a quote gains
one), URL-encoded, base64-encoded at any alignment, hex — and each of those can land in a log,
an artifact, an error message or a database. Every form of every known secret is replaced by a
marker. Values shorter than :data:`MIN_SECRET_LENGTH` cannot be redacted without mangling
ordinary text, so they are refused where secrets are read (``mldeploy.spec.secrets``).
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Iterable
from functools import lru_cache

MIN_SECRET_LENGTH = 8
MARKER = "***"


@lru_cache(maxsize=256)
def encodings(secret: str) -> tuple[str, ...]:
    """Every form of ``secret`` worth looking for, longest first."""
    raw = secret.encode()
    forms = {
        secret,
        json.dumps(secret)[1:-1],  # JSON: \\ \" \n \uXXXX
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(json.dumps(secret)[1:-1])[1:-1],  # a JSON string inside a JSON string (stored logs)
        repr(secret)[1:-1],
        repr(raw)[2:-1],
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote(secret),
        urllib.parse.quote_plus(secret),
        raw.hex(),
    }
    for skip in range(3):  # base64 at each alignment: the characters fixed by the secret's bytes alone
        chunk = raw[skip : skip + 3 * ((len(raw) - skip) // 3)]
        if len(chunk) >= 3:
            forms.add(base64.b64encode(chunk).decode())
            forms.add(base64.urlsafe_b64encode(chunk).decode())
    return tuple(sorted((f for f in forms if len(f) >= MIN_SECRET_LENGTH // 2), key=len, reverse=True))


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every form of every secret (at least MIN_SECRET_LENGTH long) replaced by ``***``."""
    forms = sorted(
        {form for secret in secrets if secret and len(secret) >= MIN_SECRET_LENGTH for form in encodings(secret)},
        key=len,
        reverse=True,
    )
    for form in forms:
        if form in text:
            text = text.replace(form, MARKER)
    return text
