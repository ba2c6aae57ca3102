"""The ResourcePolicy CRD: a structural schema that accepts the examples and rejects broken ones.

jsonschema checks the openAPIV3Schema as the API server would with strict field validation
(unknown fields rejected: every object with `properties` gets `additionalProperties: false`).
The CEL rules (x-kubernetes-validations) are checked by their Python twins below; a CEL rule
without a twin fails the test, so the two cannot drift apart silently.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from manifests_support import MANIFESTS, REPO

CRD_FILE = MANIFESTS / "crd" / "resourcepolicy.yaml"
EXAMPLES = sorted((MANIFESTS / "examples").glob("*.yaml"))
BROKEN = [
    d for d in yaml.safe_load_all(Path(__file__).with_name("broken-policies.yaml").read_text())
]

CEL_TWINS: dict[str, Callable[[Any], bool]] = {
    "(self.operator in ['In', 'NotIn']) ? (has(self.values) && size(self.values) > 0) "
    ": (!has(self.values) || size(self.values) == 0)": lambda e: (
        bool(e.get("values")) if e["operator"] in ("In", "NotIn") else not e.get("values")
    ),
    "self.filter(u, u.resource == 'eci').size() <= 1": lambda units: (
        sum(1 for u in units if u.get("resource") == "eci") <= 1
    ),
}


def _crd() -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(CRD_FILE.read_text())
    return crd


def _version() -> dict[str, Any]:
    (version,) = _crd()["spec"]["versions"]
    return version  # type: ignore[no-any-return]


def _schema() -> dict[str, Any]:
    return _version()["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def _strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes")}
        if "properties" in schema and "additionalProperties" not in schema:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}{{}}")


def _values_at(document: Any, path: str) -> Iterator[Any]:
    """Every value of `document` at a schema path like `.spec.units` or `.spec.selector.x[]`."""
    values = [document]
    for part in [p for p in path.replace("[]", ".[]").split(".") if p]:
        next_values = []
        for v in values:
            if part == "[]" and isinstance(v, list):
                next_values.extend(v)
            elif isinstance(v, dict) and part in v:
                next_values.append(v[part])
        values = next_values
    yield from values


def validate(policy: dict[str, Any]) -> list[str]:
    """Why the API server would reject `policy` (empty when it would accept it)."""
    errors = [e.message for e in jsonschema.Draft7Validator(_strict(_schema())).iter_errors(policy)]
    if errors:
        return errors
    for path, node in _nodes(_schema()):
        for rule in node.get("x-kubernetes-validations", []):
            twin = CEL_TWINS[" ".join(rule["rule"].split())]
            for value in _values_at(policy, path):
                if not twin(value):
                    errors.append(rule["message"])
    return errors


def test_identity() -> None:
    crd = _crd()
    assert crd["metadata"]["name"] == "resourcepolicies.spillover.dev"
    assert crd["spec"]["group"] == "spillover.dev"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["kind"] == "ResourcePolicy"
    version = _version()
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    assert {c["name"] for c in version["additionalPrinterColumns"]} >= {"Units", "Age"}


def test_schema_is_structural() -> None:
    for path, node in _nodes(_schema()):
        assert "type" in node, f"{path or '<root>'}: every node needs a type"
        assert not ("properties" in node and "additionalProperties" in node), (
            f"{path}: properties and additionalProperties are exclusive in a structural schema"
        )
        if node["type"] == "array":
            assert "items" in node, f"{path}: arrays need items"
    spec = _schema()["properties"]["spec"]
    assert spec["properties"]["whenTryNextUnits"]["default"] == "LackResourceOrExceedMax"
    assert spec["properties"]["ignoreTerminatingPods"]["default"] is True


def test_every_cel_rule_has_a_python_twin() -> None:
    rules = [
        " ".join(r["rule"].split())
        for _, node in _nodes(_schema())
        for r in node.get("x-kubernetes-validations", [])
    ]
    assert rules
    assert set(rules) <= set(CEL_TWINS), set(rules) - set(CEL_TWINS)


def test_examples_exist_and_are_policies() -> None:
    assert len(EXAMPLES) >= 3
    for path in EXAMPLES:
        doc = yaml.safe_load(path.read_text())
        assert (doc["apiVersion"], doc["kind"]) == ("spillover.dev/v1alpha1", "ResourcePolicy")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_accepted(path: Path) -> None:
    assert validate(yaml.safe_load(path.read_text())) == []


@pytest.mark.parametrize("policy", BROKEN, ids=[d["metadata"]["name"] for d in BROKEN])
def test_broken_policy_rejected(policy: dict[str, Any]) -> None:
    assert validate(policy), f"{policy['metadata']['name']} should be rejected"


def test_broken_policies_are_otherwise_valid_shapes() -> None:
    # Guard against a broken example that fails only for a typo in apiVersion or kind.
    for policy in BROKEN:
        assert (policy["apiVersion"], policy["kind"]) == (
            "spillover.dev/v1alpha1",
            "ResourcePolicy",
        )


def test_design_doc_example_is_accepted() -> None:
    # DESIGN.md §3 shows the canonical policy; keep the CRD able to take it.
    design = REPO.parent / "shared" / "DESIGN.md"
    if not design.is_file():
        pytest.skip("../shared/DESIGN.md not beside the repository")
    text = design.read_text()
    start = text.index("apiVersion: spillover.dev/v1alpha1")
    block = text[start : text.index("```", start)]
    policy = yaml.safe_load(block)
    assert validate(copy.deepcopy(policy)) == []
