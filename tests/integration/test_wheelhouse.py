"""The wheelhouse against the real package index and a real engine: requirements that have no wheel for the
image's Python are all named at once, with what would work; a pure-Python package published only as a source
archive is built into a wheel in a container without network, never on this machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from mldeploy.adapters.docker_engine import DockerEngine
from mldeploy.adapters.wheelhouse import resolve_wheelhouse
from mldeploy.diagnosis import Code
from mldeploy.errors import PermanentError
from mldeploy.settings import Settings


@pytest.fixture
def build_sdist(real_engine: None):  # type: ignore[no-untyped-def]
    engine, base = DockerEngine(), Settings.load().base_image
    built: list[str] = []

    def build(sdist: Path, out: Path) -> Path | None:
        built.append(sdist.name)
        return engine.build_wheel(base, sdist, out)

    build.built = built  # type: ignore[attr-defined]
    return build


def test_a_pure_python_source_only_package_is_built_in_a_container(tmp_path: Path, build_sdist) -> None:  # type: ignore[no-untyped-def]
    # docopt 0.6.2 was only ever published as a source archive
    house = resolve_wheelhouse(tmp_path, {"user.txt": "docopt==0.6.2\n"}, "3.11", build_sdist=build_sdist)
    assert build_sdist.built == ["docopt-0.6.2.tar.gz"]
    assert any(name.startswith("docopt-0.6.2-") and name.endswith("-none-any.whl") for name in house.wheels)
    again = resolve_wheelhouse(tmp_path, {"user.txt": "docopt==0.6.2\n"}, "3.11", build_sdist=build_sdist)
    assert again.cached and build_sdist.built == ["docopt-0.6.2.tar.gz"]  # not rebuilt


def test_old_pins_are_all_named_with_the_python_that_has_their_wheels(tmp_path: Path, build_sdist) -> None:  # type: ignore[no-untyped-def]
    requirements = {"user.txt": "joblib\nnumpy==1.16.6\nscikit-learn==0.22.1\n"}
    with pytest.raises(PermanentError) as caught:
        resolve_wheelhouse(
            tmp_path, requirements, "3.11", python_pin="3.6.2", source_file="myenv.yml", build_sdist=build_sdist
        )
    found = caught.value.diagnosis
    assert found is not None and found.code is Code.DEPENDENCY_RESOLUTION_FAILED
    assert "numpy==1.16.6" in found.summary and "scikit-learn==0.22.1" in found.summary
    assert "joblib" not in found.summary  # it resolves: not an offender
    assert "numpy==1.16.6: no wheel for Python 3.11, but there is one for Python 3.6.2" in found.detail
    # Python 3.6 cannot run the scoring runtime, so environment.python is not offered
    assert "older than the scoring runtime supports" in found.hint and "myenv.yml" in found.hint
    # compiled packages: their source archives were tried in the container and did not give a pure wheel
    assert set(build_sdist.built) == {"numpy-1.16.6.zip", "scikit-learn-0.22.1.tar.gz"}


def test_a_package_that_does_not_exist_is_named(tmp_path: Path, build_sdist) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PermanentError) as caught:
        resolve_wheelhouse(
            tmp_path, {"user.txt": "joblib\nmldeploy-no-such-package-x==1.0\n"}, "3.11", build_sdist=build_sdist
        )
    found = caught.value.diagnosis
    assert found is not None
    assert "mldeploy-no-such-package-x==1.0" in found.summary and "joblib" not in found.summary
    assert build_sdist.built == []
