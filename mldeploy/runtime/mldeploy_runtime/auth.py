"""Optional key auth: ``Authorization: Bearer <key>`` against a primary and a secondary key.

Both keys are valid at the same time, so a key is rotated without refusing a single request: put the new key in
the secondary slot, move clients over, then make it the primary. Keys come from the environment (filled from the
deployment's secrets) or from files (``<VAR>_FILE``, e.g. a mounted Kubernetes secret), which are re-read when they
change, so a rotation there needs no restart at all. The comparison is constant-time (``hmac.compare_digest`` on
SHA-256 digests, so not even the key length leaks) and every candidate is compared with every key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable

from .settings import MIN_KEY_LENGTH, AuthSource

RELOAD_INTERVAL_S = 1.0


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class KeyAuth:
    """Checks ``Authorization`` header values; ``log`` reports key-file problems (never key values)."""

    def __init__(self, sources: tuple[AuthSource, ...], log: Callable[[str], None]) -> None:
        self.sources = sources
        self._log = log
        self._files = [s for s in sources if s.file]
        self._stamp: dict[str, tuple[int, int]] = {}
        self._keys: dict[str, bytes] = {}
        self._next_check = 0.0
        for s in sources:
            if s.value:
                self._keys[s.name] = _digest(s.value)
        self._reload(force=True)
        self._digests = tuple(self._keys.values())

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sources]

    def _reload(self, force: bool = False) -> None:
        for s in self._files:
            assert s.file is not None
            try:
                st = os.stat(s.file)
            except OSError as ex:
                if force or s.name in self._keys:
                    self._log(f"cannot read {s.name}_FILE={s.file}: {ex.strerror}; that key is not accepted")
                self._keys.pop(s.name, None)
                self._stamp.pop(s.name, None)
                continue
            stamp = (st.st_mtime_ns, st.st_size)
            if not force and self._stamp.get(s.name) == stamp:
                continue
            self._stamp[s.name] = stamp
            try:
                with open(s.file, encoding="utf-8") as f:
                    key = f.read().strip()
            except (OSError, UnicodeDecodeError) as ex:
                self._log(f"cannot read {s.name}_FILE={s.file}: {ex}; that key is not accepted")
                self._keys.pop(s.name, None)
                continue
            if len(key) < MIN_KEY_LENGTH:
                self._log(f"{s.name}_FILE={s.file} holds a key shorter than {MIN_KEY_LENGTH} characters; not accepted")
                self._keys.pop(s.name, None)
                continue
            if not force:
                self._log(f"{s.name} changed ({s.file}); the new key is accepted from now on")
            self._keys[s.name] = _digest(key)
        self._digests = tuple(self._keys.values())

    def check(self, header: bytes | None) -> bool:
        """True when ``header`` is ``Bearer <one of the keys>``."""
        if self._files:
            now = time.monotonic()
            if now >= self._next_check:
                self._next_check = now + RELOAD_INTERVAL_S
                self._reload()
        if not header:
            return False
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        candidate = hashlib.sha256(token.strip()).digest()
        ok = False
        for digest in self._digests:  # no early exit: the time does not tell which key matched
            ok |= hmac.compare_digest(candidate, digest)
        return ok
