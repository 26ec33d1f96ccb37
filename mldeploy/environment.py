"""Turn a conda environment file or a requirements file into pip requirements for the image.

Pure. Old AzureML environments deploy unchanged: the old serving stack (``azureml-defaults``…)
is dropped in favour of our runtime with a notice, an old ``python=`` pin is reported and the
base image's Python is used, conda package names are mapped to their pip names, and conda-only
packages that have no pip equivalent are a clear error (naming the file and the entry).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement

from mldeploy.errors import SpecError, SpecProblem

# Packages of the classic serving stack; our runtime serves the script instead.
SERVING_STACK = {
    "azureml-defaults",
    "azureml-inference-server-http",
    "azureml-core",
    "azureml-model-management-sdk",
    "azureml-contrib-services",
}
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


def _requirement(
    line: str, file: str, where: str, problems: list[SpecProblem], *, allow_direct_urls: bool = False
) -> Requirement | None:
    if line.startswith("-"):
        problems.append(
            SpecProblem(
                file,
                where,
                f"pip option {line!r} is not supported",
                "list package requirements only; the index is configured on the host",
            )
        )
        return None
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
                f"{file}: {req.name} is the classic AzureML serving stack; the mldeploy scoring "
                "runtime replaces it (azureml.core.Model.get_model_path keeps working)"
            )
            continue
        kept.append(str(req))
    return tuple(dict.fromkeys(kept))


def parse_requirements(text: str, file: str, *, allow_direct_urls: bool = False) -> PythonEnvironment:
    problems: list[SpecProblem] = []
    reqs: list[Requirement] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        req = _requirement(line, file, f"line {number}", problems, allow_direct_urls=allow_direct_urls)
        if req is not None:
            reqs.append(req)
    if problems:
        raise SpecError(file, problems)
    notices: list[str] = []
    return PythonEnvironment(_keep(reqs, notices, file), None, tuple(notices))


def parse_conda(text: str, file: str, *, allow_direct_urls: bool = False) -> PythonEnvironment:
    problems: list[SpecProblem] = []
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
    notices: list[str] = []
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
                    req = _requirement(
                        str(item).strip(), file, f"{where}.pip[{j}]", problems, allow_direct_urls=allow_direct_urls
                    )
                    if req is not None:
                        reqs.append(req)
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
    return PythonEnvironment(_keep(reqs, notices, file), python_pin, tuple(notices))


def python_pin_notice(pin: str | None, base_python: str, explicit: bool, file: str) -> str | None:
    """Report a conda python= pin that the chosen base image does not honour."""
    if pin is None or explicit:
        return None
    pin_minor = ".".join(pin.split(".")[:2])
    if pin_minor == base_python:
        return None
    return (
        f"WARNING {file}: python={pin} is pinned, but the base image has Python {base_python}; "
        f"using {base_python}. Set environment.python or environment.base_image to choose another."
    )
