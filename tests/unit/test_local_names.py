"""The local target's container names are the aliases the front resolves: they must be DNS labels."""

from __future__ import annotations

import re

import pytest

from mldeploy.targets.local import backend_name

LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@pytest.mark.parametrize("service", ["d", "diabetes", "a" * 45, "a" * 46, "x-" * 31 + "y", "s" * 63])
def test_a_backend_name_is_a_dns_label_and_keeps_its_token(service: str) -> None:
    name = backend_name(service, "0badf00d")
    assert LABEL.match(name), name
    assert name.endswith("-0badf00d") and name.startswith("mldeploy-")


def test_short_names_are_unchanged() -> None:
    assert backend_name("diabetes", "0badf00d") == "mldeploy-diabetes-0badf00d"


def test_the_engines_start_time_reads_with_nanoseconds_or_without() -> None:
    from datetime import UTC, datetime

    from mldeploy.targets.local import started_at

    assert started_at("2026-11-30T22:31:05.123456789Z") == datetime(2026, 11, 30, 22, 31, 5, 123456, tzinfo=UTC)
    assert started_at("2026-11-30T22:31:05Z") == datetime(2026, 11, 30, 22, 31, 5, tzinfo=UTC)
