"""Machine-level settings: where mldeploy keeps its state and which base image is the default.

Precedence for the base image: the spec (environment.base_image, or environment.python) >
``MLDEPLOY_BASE_IMAGE`` > ``<home>/config.yaml`` (written by ``make setup``) > python:3.11-slim.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_BASE_IMAGE = "python:3.11-slim"


@dataclass(frozen=True)
class Settings:
    home: Path
    base_image: str
    base_image_source: str  # where the default came from, for the run's notices

    @staticmethod
    def load(environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        home = Path(env.get("MLDEPLOY_HOME") or Path.home() / ".mldeploy").expanduser()
        if env.get("MLDEPLOY_BASE_IMAGE"):
            return Settings(home, env["MLDEPLOY_BASE_IMAGE"], "MLDEPLOY_BASE_IMAGE")
        config_file = home / "config.yaml"
        if config_file.is_file():
            config = yaml.safe_load(config_file.read_text()) or {}
            if isinstance(config, dict) and config.get("base_image"):
                return Settings(home, str(config["base_image"]), str(config_file))
        return Settings(home, DEFAULT_BASE_IMAGE, "built-in default")
