"""Turn a conda environment file or a requirements file into pip requirements for the image.

Pure. Old AzureML environments deploy unchanged: the old serving stack (``azureml-defaults``…)
is dropped in favour of our runtime with a notice, an old ``python=`` pin is reported and the
base image's Python is used, conda package names are mapped to their pip names, and conda-only
packages that have no pip equivalent are a clear error (naming the file and the entry).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement

from mldeploy.contract import MIN_PYTHON, runtime_supports
from mldeploy.errors import SpecError, SpecProblem

# Packages of the classic SDK's serving stack and its meta-packages: our runtime serves the script instead,
# and its shim provides what scripts import from them (Model.get_model_path, rawhttp, ModelDataCollector).
# Other azureml-* packages a user lists (azureml-train-automl-runtime...) are installed as they are.
SERVING_STACK = {
    "azureml-defaults",
    "azureml-inference-server-http",
    "azureml-core",
    "azureml-sdk",
    "azureml-monitoring",
    "azureml-model-management-sdk",
    "azureml-contrib-services",
    "azureml-contrib-server",
}
# pip options the classic SDK wrote into environment files (index and find-links lines).
INDEX_OPTIONS = {
    "-i": "--extra-index-url",  # the host's configured index stays the main one
    "--index-url": "--extra-index-url",
    "--extra-index-url": "--extra-index-url",
    "-f": "--find-links",
    "--find-links": "--find-links",
}
HARMLESS_OPTIONS = {"--trusted-host", "--pre", "--prefer-binary", "--no-cache-dir"}
PUBLIC_INDEX_HOSTS = ("pypi.org", "pypi.python.org", "files.pythonhosted.org")
# Conda packages whose pip distribution has another name.
CONDA_TO_PIP = {
    "pytorch": "torch",
    "py-xgboost": "xgboost",
    "pytorch-cpu": "torch",
    "tensorflow-mkl": "tensorflow",
    "matplotlib-base": "matplotlib",
    "msgpack-python": "msgpack",
    "pyyaml": "PyYAML",
}
# Conda packages that exist only as system/binary packages; nothing on PyPI installs them.
CONDA_ONLY = {
    "cudatoolkit",
    "cudnn",
    "mkl",
    "mkl-service",
    "mkl_fft",
    "mkl_random",
    "libgcc-ng",
    "libstdcxx-ng",
    "libgfortran-ng",
    "openssl",
    "nodejs",
    "r-base",
    "blas",
    "openblas",
    "libblas",
    "liblapack",
    "gcc",
    "gxx",
    "gxx_linux-64",
    "gcc_linux-64",
    "_libgcc_mutex",
    "libffi",
    "zlib",
    "readline",
    "tk",
    "xz",
    "sqlite",
    "ncurses",
    "intel-openmp",
    "nccl",
    "magma-cuda",
}
IGNORED_CONDA = {"pip", "setuptools", "wheel", "ca-certificates", "certifi"}
# name, then a version: '=1.2' (conda's fuzzy 1.2.*), '==1.2', '>=1.2,<2' ...; then an optional '=build'.
CONDA_SPEC = re.compile(
    r"^(?P<name>[A-Za-z0-9_.+-]+)\s*"
    r"(?P<version>(?:==?|[<>]=?|!=|~=)[^=<>!~,\s]+(?:,(?:==?|[<>]=?|!=|~=)[^=<>!~,\s]+)*)?"
    r"(?:=(?P<build>[A-Za-z0-9_.*]+))?\Z"
)


@dataclass(frozen=True)
class PythonEnvironment:
    """What the build installs: pip requirement lines plus what the user should know."""

    requirements: tuple[str, ...]
    python_pin: str | None  # the python= pin of a conda file, if any
    notices: tuple[str, ...]
    index_options: tuple[str, ...] = ()  # pip options for the wheelhouse (only when the user allows them)


def load_environment(
    conda_file: Path | None, requirements: Path | None, *, allow_direct_urls: bool = False
) -> PythonEnvironment:
    path = conda_file or requirements
    if path is None:
        return PythonEnvironment((), None, ())
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        problem = SpecProblem(str(path), "(file)", "not UTF-8 text", "save it as UTF-8")
        raise SpecError(str(path), [problem]) from None
    if conda_file is not None:
        return parse_conda(text, str(path), allow_direct_urls=allow_direct_urls)
    return parse_requirements(text, str(path), allow_direct_urls=allow_direct_urls)


@dataclass
class _Reading:
    """What reading one environment file found: problems, notices, and the index options to use."""

    file: str
    allow_direct_urls: bool
    problems: list[SpecProblem] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)

    def option(self, line: str, where: str) -> None:
        """A pip option line: the index and find-links lines the classic SDK wrote are accepted."""
        name, _, value = line.replace("=", " ", 1).partition(" ")
        value = value.strip()
        if name in HARMLESS_OPTIONS:
            self.notices.append(f"{self.file} ({where}): pip option {name} is not needed here and is ignored")
            return
        if name not in INDEX_OPTIONS or not value:
            self.problems.append(
                SpecProblem(
                    self.file,
                    where,
                    f"pip option {line!r} is not supported",
                    "list package requirements (and index or find-links lines, which are used only when the "
                    "user allows it); other options are set on the host",
                )
            )
            return
        host = urllib.parse.urlsplit(value).hostname or ""
        if host.endswith(PUBLIC_INDEX_HOSTS):
            self.notices.append(
                f"{self.file} ({where}): {name} {value} is the public index: the configured one is used"
            )
        elif not value.startswith(("https://", "http://")):
            self.notices.append(f"{self.file} ({where}): {name} {value} is not a URL and is ignored")
        elif not self.allow_direct_urls:
            self.notices.append(
                f"{self.file} ({where}): {name} {value} is ignored: packages come from the configured index "
                "(the user may allow other sources with --allow-direct-urls)"
            )
        else:
            self.options += [INDEX_OPTIONS[name], value]
            self.notices.append(f"{self.file} ({where}): {name} {value} is used as an extra source of wheels")


def _requirement(
    line: str, file: str, where: str, problems: list[SpecProblem], *, allow_direct_urls: bool = False
) -> Requirement | None:
    try:
        req = Requirement(line)
    except InvalidRequirement as exc:
        problems.append(
            SpecProblem(
                file,
                where,
                f"{line!r} is not a valid requirement ({exc})",
                "write it as name[extras]==version, e.g. scikit-learn==1.5.2",
            )
        )
        return None
    if req.url and not allow_direct_urls:
        problems.append(
            SpecProblem(
                file,
                where,
                f"{req.name} is a direct reference to {req.url.split('://', 1)[0]}:// (not the package index)",
                "name a released version (name==1.2.3); a direct URL or local path is fetched by the deploying "
                "machine, so only its owner may allow it: mldeploy deploy --allow-direct-urls",
            )
        )
        return None
    return req


def _keep(reqs: list[Requirement], notices: list[str], file: str) -> tuple[str, ...]:
    kept: list[str] = []
    for req in reqs:
        name = req.name.lower().replace("_", "-")
        if name in SERVING_STACK:
            notices.append(
                f"{file}: {req.name} is the classic AzureML SDK's serving stack; the mldeploy scoring runtime "
                "replaces it (Model.get_model_path, rawhttp and ModelDataCollector keep working)"
            )
            continue
        kept.append(str(req))
    return tuple(dict.fromkeys(kept))


def _pip_line(reading: _Reading, line: str, where: str, reqs: list[Requirement]) -> None:
    if line.startswith("-"):
        reading.option(line, where)
        return
    req = _requirement(line, reading.file, where, reading.problems, allow_direct_urls=reading.allow_direct_urls)
    if req is not None:
        reqs.append(req)


def parse_requirements(text: str, file: str, *, allow_direct_urls: bool = False) -> PythonEnvironment:
    reading = _Reading(file, allow_direct_urls)
    reqs: list[Requirement] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        _pip_line(reading, line, f"line {number}", reqs)
    if reading.problems:
        raise SpecError(file, reading.problems)
    kept = _keep(reqs, reading.notices, file)
    return PythonEnvironment(kept, None, tuple(reading.notices), tuple(reading.options))


def parse_conda(text: str, file: str, *, allow_direct_urls: bool = False) -> PythonEnvironment:
    reading = _Reading(file, allow_direct_urls)
    problems = reading.problems
    try:
        doc: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(file, [SpecProblem(file, "(document)", f"not valid YAML: {exc}", "fix the YAML")]) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("dependencies"), list):
        raise SpecError(
            file,
            [
                SpecProblem(
                    file,
                    "dependencies",
                    "a conda environment needs a dependencies list",
                    "add 'dependencies:' with '- pip:' and your packages",
                )
            ],
        )
    notices = reading.notices
    if doc.get("channels"):
        notices.append(f"{file}: conda channels are not used; packages are installed from pip wheels")
    python_pin: str | None = None
    reqs: list[Requirement] = []
    for index, dep in enumerate(doc["dependencies"]):
        where = f"dependencies[{index}]"
        if isinstance(dep, dict):
            for key, items in dep.items():
                if key != "pip" or not isinstance(items, list):
                    problems.append(
                        SpecProblem(
                            file,
                            f"{where}.{key}",
                            "only a 'pip:' list is supported here",
                            "put pip packages under '- pip:'",
                        )
                    )
                    continue
                for j, item in enumerate(items):
                    _pip_line(reading, str(item).strip(), f"{where}.pip[{j}]", reqs)
            continue
        match = CONDA_SPEC.match(str(dep).strip())
        if match is None:
            problems.append(
                SpecProblem(file, where, f"{dep!r} is not a conda package spec", "write it as name or name=version")
            )
            continue
        name, version = match["name"].lower(), match["version"]
        if name == "python":
            python_pin = (version or "").lstrip("=") or None
            continue
        if name in IGNORED_CONDA:
            continue
        if name in CONDA_ONLY or name.startswith("r-"):
            problems.append(
                SpecProblem(
                    file,
                    where,
                    f"conda package {name!r} has no pip equivalent",
                    "remove it, or install it with a RUN step in environment.extra_dockerfile_steps",
                )
            )
            continue
        pip_name = CONDA_TO_PIP.get(name, name)
        if pip_name != name:
            notices.append(f"{file}: conda package {name} is installed as pip package {pip_name}")
        pip_version = version or ""
        if version and version.startswith("=") and not version.startswith("=="):
            # conda 'x=1.2' means 1.2.*; pip wants '==1.2.*' ('x==1.2' is exact in both)
            pip_version = f"={version}"
            if pip_version.count(".") < 2 and not pip_version.endswith("*"):
                pip_version += ".*"
        req = _requirement(f"{pip_name}{pip_version}", file, where, problems)
        if req is not None:
            reqs.append(req)
    if problems:
        raise SpecError(file, problems)
    kept = _keep(reqs, notices, file)
    return PythonEnvironment(kept, python_pin, tuple(notices), tuple(reading.options))


def python_pin_notice(pin: str | None, base_python: str, explicit: bool, file: str) -> str | None:
    """Report a conda python= pin that the chosen base image does not honour."""
    if pin is None or explicit:
        return None
    pin_minor = ".".join(pin.split(".")[:2])
    if pin_minor == base_python:
        return None
    if runtime_supports(pin_minor):
        choose = "Set environment.python or environment.base_image to choose another."
    else:
        choose = f"The scoring runtime needs Python {'.'.join(map(str, MIN_PYTHON))} or later."
    return (
        f"WARNING {file}: python={pin} is pinned, but the base image has Python {base_python}; "
        f"using {base_python}. {choose}"
    )
