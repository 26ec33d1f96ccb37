"""Secret values never show, in any form they take on the way out (issue: a backslash came out
escaped, a 3-character secret not at all)."""

from __future__ import annotations

import base64
import json
import urllib.parse

import pytest

from mldeploy.redaction import MIN_SECRET_LENGTH, redact

SECRETS = ["s3cr3t-pass", 'back\\slash"quote', "ünïcødé-tøken", "with space&plus+slash/"]


def test_redact_removes_every_secret() -> None:
    text = "login -u admin -p s3cr3t-pass to registry with token abcd1234 (again: s3cr3t-pass)"
    redacted = redact(text, ["s3cr3t-pass", "abcd1234", ""])
    assert "s3cr3t-pass" not in redacted and "abcd1234" not in redacted
    assert redacted.count("***") == 3 and "admin" in redacted


def test_redact_longest_secret_first() -> None:
    assert redact("token=abcdef123456", ["abcdefgh", "abcdef123456"]) == "token=***"


def test_values_too_short_to_redact_are_left_alone_here_and_refused_where_secrets_are_read() -> None:
    assert MIN_SECRET_LENGTH >= 8
    assert redact("a b c abc", ["abc"]) == "a b c abc"  # see tests/unit/test_adversarial.py for the refusal


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize(
    "encode",
    [
        lambda s: s,
        lambda s: json.dumps(s),
        lambda s: json.dumps({"log": f"token={s}"}),
        lambda s: json.dumps(json.dumps({"message": s})),  # a JSON document stored inside JSON
        lambda s: json.dumps(s, ensure_ascii=False),
        repr,
        lambda s: repr(s.encode()),
        lambda s: urllib.parse.quote(s, safe=""),
        lambda s: urllib.parse.urlencode({"token": s}),
        lambda s: s.encode().hex(),
        lambda s: base64.b64encode(s.encode()).decode(),
        lambda s: base64.b64encode(b"x" + s.encode()).decode(),  # at every alignment
        lambda s: base64.b64encode(b"xy" + s.encode() + b"z").decode(),
        lambda s: base64.urlsafe_b64encode(b"Basic " + s.encode()).decode(),
    ],
    ids=[
        "raw",
        "json",
        "json-in-object",
        "json-in-json",
        "json-utf8",
        "repr",
        "bytes-repr",
        "url",
        "form",
        "hex",
        "base64",
        "base64+1",
        "base64+2",
        "base64-url",
    ],
)
def test_every_form_of_a_secret_is_redacted(secret, encode) -> None:
    shown = f"before {encode(secret)} after"
    redacted = redact(shown, [secret])
    assert redacted != shown, "the encoded secret was found"
    for form in (secret, json.dumps(secret)[1:-1], repr(secret)[1:-1], secret.encode().hex()):
        assert form not in redacted
    raw = secret.encode()
    assert base64.b64encode(raw[:6]).decode() not in redacted or len(raw) < 6
