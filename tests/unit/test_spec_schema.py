"""What is derived from the spec's one declaration stays in step with it: the packaged JSON
Schema, the README's key reference, and what an editor validating against the schema flags."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from mldeploy.cli import main
from mldeploy.spec.reference import SCHEMA_FILE, json_schema, markdown_reference, schema_text
from mldeploy.spec.targets import TARGET_SECTIONS

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "deployments" / "examples"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _flagged(validator: jsonschema.Draft202012Validator, document: dict[str, Any]) -> list[str]:
    return [error.message for error in validator.iter_errors(document)]


def test_the_packaged_schema_is_the_declaration_of_today() -> None:
    assert SCHEMA_FILE.read_text() == schema_text(), "regenerate it: make reference"


def test_mldeploy_schema_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema()


def test_the_readme_key_reference_is_the_declaration_of_today() -> None:
    readme = (REPO / "README.md").read_text()
    start = readme.index("<!-- spec-reference:start")
    section = readme[readme.index("-->", start) + 3 : readme.index("<!-- spec-reference:end -->")]
    assert section.strip("\n") + "\n" == markdown_reference(), "regenerate the README table: make reference"


@pytest.mark.parametrize("example", ["diabetes", "iris"])
def test_examples_point_editors_at_the_schema_and_pass_it(validator, example: str) -> None:
    text = (EXAMPLES / example / "service.yaml").read_text()
    match = re.match(r"# yaml-language-server: \$schema=(\S+)\n", text)
    assert match, "the first line tells the YAML language server where the schema is"
    assert (EXAMPLES / example / match.group(1)).resolve() == SCHEMA_FILE
    assert _flagged(validator, yaml.safe_load(text)) == []


BASE = {
    "name": "svc",
    "model": {"name": "m", "path": "m.pkl"},
    "entry_script": "score.py",
    "environment": {"requirements": "requirements.txt"},
}


@pytest.mark.parametrize(
    "document",
    [
        {**BASE, "colour": "blue"},  # unknown top-level key
        {**BASE, "target": {"kind": "local", "namespace": "x"}},  # a kubernetes key under local
        {**BASE, "target": {"kind": "kubernetes", "port": 8890}},  # a local key under kubernetes
        {**BASE, "target": {"kind": "kubernetes", "expose": "nodeport"}},  # not an allowed value
        {**BASE, "target": {"kind": "aci"}},  # resource_group is required
        {**BASE, "target": {"kind": "mainframe"}},
        {**BASE, "name": "Not_DNS"},
        {**BASE, "environment": {"requirements": "r.txt", "variables": {"BAD NAME": "1"}}},
        {**BASE, "smoke": [{"request": {}, "expect_status": 999}]},
    ],
    ids=lambda d: json.dumps({k: v for k, v in d.items() if k not in BASE or d[k] != BASE[k]})[:60],
)
def test_an_editor_flags_a_wrong_key_or_value(validator, document: dict[str, Any]) -> None:
    assert _flagged(validator, document), "the schema accepted a document mldeploy refuses"


def test_an_editor_accepts_each_kind_with_its_own_keys(validator) -> None:
    for document in (
        {**BASE, "target": {"port": 9000}},  # kind defaults to local
        {**BASE, "target": {"kind": "kubernetes", "namespace": "ml", "autoscale": {"max_replicas": 3}}},
        {**BASE, "target": {"kind": "aci", "resource_group": "rg", "cloud": "azure_china"}},
    ):
        assert _flagged(validator, document) == []


def test_every_target_kind_is_in_the_reference() -> None:
    reference = markdown_reference()
    for kind, section in TARGET_SECTIONS.items():
        assert f"`target` with `kind: {kind}`" in reference
        for key in section.model_fields:
            assert f"`target.{key}`" in reference
