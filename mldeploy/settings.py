"""Machine-level settings: where mldeploy keeps its state, the default base image, and what the
*user* (never a spec) allows.

Precedence for the base image: the spec (environment.base_image, or environment.python) >
``MLDEPLOY_BASE_IMAGE`` > ``<home>/config.yaml`` (written by ``make setup``) > python:3.11-slim.
``<home>/config.yaml`` may also list ``allowed_roots``: folders outside a spec's own that its
paths may name (the command line's ``--allow-root`` adds to them), and ``max_model_gb``: the
largest model or source folder a spec may name (default 20; ``MLDEPLOY_MAX_MODEL_GB`` overrides),
and ``allow_direct_urls: true`` (requirements by URL or local path; ``--allow-direct-urls``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from mldeploy.spec.files import UserLimits

DEFAULT_BASE_IMAGE = "python:3.11-slim"
FINGERPRINT_KEY_FILE = "fingerprint.key"


@dataclass(frozen=True)
class Settings:
    home: Path
    base_image: str
    base_image_source: str  # where the default came from, for the run's notices
    allowed_roots: tuple[Path, ...] = ()
    max_model_bytes: int = 20 * 1024**3
    allow_direct_urls: bool = False

    @staticmethod
    def load(environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        home = Path(env.get("MLDEPLOY_HOME") or Path.home() / ".mldeploy").expanduser()
        config_file = home / "config.yaml"
        config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else None
        config = config if isinstance(config, dict) else {}
        roots = tuple(Path(str(r)).expanduser() for r in config.get("allowed_roots") or () if str(r).strip())
        limit_gb = float(env.get("MLDEPLOY_MAX_MODEL_GB") or config.get("max_model_gb") or 20)
        if env.get("MLDEPLOY_BASE_IMAGE"):
            base, source = env["MLDEPLOY_BASE_IMAGE"], "MLDEPLOY_BASE_IMAGE"
        elif config.get("base_image"):
            base, source = str(config["base_image"]), str(config_file)
        else:
            base, source = DEFAULT_BASE_IMAGE, "built-in default"
        return Settings(
            home,
            base,
            source,
            allowed_roots=roots,
            max_model_bytes=int(limit_gb * 1024**3),
            allow_direct_urls=config.get("allow_direct_urls") is True,
        )

    def limits(self, extra_roots: Sequence[str | Path] = (), allow_direct_urls: bool = False) -> UserLimits:
        """What this user allows a spec: the configuration, widened by the command line."""
        return UserLimits(
            allowed_roots=(*self.allowed_roots, *(Path(root).expanduser() for root in extra_roots)),
            max_bytes=self.max_model_bytes,
            allow_direct_urls=self.allow_direct_urls or allow_direct_urls,
        )

    def fingerprint_key(self, environ: dict[str, str] | None = None) -> bytes:
        """The key of the secrets digest in deploy fingerprints.

        ``MLDEPLOY_FINGERPRINT_KEY`` (share it between workers that deploy the same services, so
        they agree on no-ops), else a random key made once in ``<home>/fingerprint.key`` (0600).
        """
        env = os.environ if environ is None else environ
        if env.get("MLDEPLOY_FINGERPRINT_KEY"):
            return env["MLDEPLOY_FINGERPRINT_KEY"].encode()
        path = self.home / FINGERPRINT_KEY_FILE
        if not path.is_file():
            self.home.mkdir(parents=True, exist_ok=True)
            staging = path.with_name(f".{FINGERPRINT_KEY_FILE}.{os.getpid()}")
            staging.write_text(secrets.token_hex(32))
            staging.chmod(0o600)
            try:
                os.link(staging, path)  # atomic: two first runs at once agree on one key
            except FileExistsError:
                pass
            finally:
                staging.unlink()
        return path.read_text().strip().encode()
