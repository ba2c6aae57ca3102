"""A small kustomize, enough for `manifests/`: the tests render with it when no kustomize is on PATH.

Supported, with kustomize's semantics: `resources` (files and directories), `components`
(`kind: Component`), `configMapGenerator` (`files`, `behavior` create/replace/merge,
`disableNameSuffixHash` only), `labels` (`pairs`, metadata only), strategic-merge `patches`
given by `path`, and `images`. Anything else in a kustomization is an error, so a feature
added to the manifests cannot be silently ignored here; when `kustomize` or `kubectl` is on
PATH, the tests also check that both renderers produce the same objects.

Order, as in kustomize: resources, then components (their resources, generators and
patches), then this kustomization's generators, then its transformers.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

__all__ = ["KustomizeError", "build", "load_documents"]

Obj = dict[str, Any]

_KNOWN_FIELDS = {
    "apiVersion",
    "kind",
    "metadata",
    "resources",
    "components",
    "configMapGenerator",
    "labels",
    "patches",
    "images",
}

# patchMergeKey of the list fields our patches touch (from the Kubernetes API types).
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "webhooks": "name",
    "imagePullSecrets": "name",
}


class KustomizeError(Exception):
    """The kustomization uses something this renderer does not support, or is wrong."""


def load_documents(path: Path) -> list[Obj]:
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def build(directory: Path) -> list[Obj]:
    """Render the kustomization in `directory` into a list of objects."""
    return _build(directory.resolve(), expected_kind="Kustomization", accumulated=[])


def _build(directory: Path, *, expected_kind: str, accumulated: list[Obj]) -> list[Obj]:
    kfile = directory / "kustomization.yaml"
    if not kfile.is_file():
        raise KustomizeError(f"{directory}: no kustomization.yaml")
    spec = yaml.safe_load(kfile.read_text())
    unknown = set(spec) - _KNOWN_FIELDS
    if unknown:
        raise KustomizeError(f"{kfile}: unsupported fields {sorted(unknown)}")
    if spec.get("kind", "Kustomization") != expected_kind:
        raise KustomizeError(f"{kfile}: expected kind {expected_kind}, got {spec.get('kind')}")

    objects = accumulated
    for entry in spec.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            _add(objects, _build(path, expected_kind="Kustomization", accumulated=[]), source=path)
        else:
            _check_inside(directory, path)
            _add(objects, load_documents(path), source=path)
    for entry in spec.get("components", []):
        objects = _build(
            (directory / entry).resolve(), expected_kind="Component", accumulated=objects
        )
    for generator in spec.get("configMapGenerator", []):
        _generate_config_map(directory, generator, objects)
    for entry in spec.get("patches", []):
        if set(entry) != {"path"}:
            raise KustomizeError(f"{kfile}: only `patches: [{{path: ...}}]` is supported")
        patch_path = (directory / entry["path"]).resolve()
        _check_inside(directory, patch_path)
        for patch in load_documents(patch_path):
            _apply_patch(objects, patch, source=patch_path)
    for label_set in spec.get("labels", []):
        if set(label_set) - {"pairs"}:
            raise KustomizeError(f"{kfile}: labels support only `pairs`")
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(label_set["pairs"])
    for image in spec.get("images", []):
        _set_image(objects, image)
    return objects


def _check_inside(root: Path, path: Path) -> None:
    # kustomize's default load restrictor: files must be under the kustomization's directory.
    if not path.is_relative_to(root):
        raise KustomizeError(f"{path} is outside {root} (kustomize would refuse to load it)")


def _key(obj: Obj) -> tuple[str, str, str, str]:
    group = obj["apiVersion"].rpartition("/")[0]
    meta = obj.get("metadata", {})
    return group, obj["kind"], meta.get("namespace", ""), meta["name"]


def _add(objects: list[Obj], new: list[Obj], *, source: Path) -> None:
    seen = {_key(o) for o in objects}
    for obj in new:
        if _key(obj) in seen:
            raise KustomizeError(f"{source}: {_key(obj)} already defined")
        seen.add(_key(obj))
        objects.append(obj)


def _generate_config_map(directory: Path, generator: Obj, objects: list[Obj]) -> None:
    if set(generator) - {"name", "namespace", "files", "behavior", "options"}:
        raise KustomizeError(f"configMapGenerator {generator.get('name')}: unsupported fields")
    if generator.get("options") != {"disableNameSuffixHash": True}:
        raise KustomizeError("configMapGenerator: only `options: {disableNameSuffixHash: true}`")
    data: dict[str, str] = {}
    for item in generator.get("files", []):
        key, _, file = item.rpartition("=") if "=" in item else ("", "", item)
        path = (directory / file).resolve()
        _check_inside(directory, path)
        data[key or path.name] = path.read_text()
    meta = {"name": generator["name"]}
    if "namespace" in generator:
        meta["namespace"] = generator["namespace"]
    config_map: Obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}
    behavior = generator.get("behavior", "create")
    existing = [o for o in objects if _key(o) == _key(config_map)]
    if behavior == "create":
        _add(objects, [config_map], source=directory)
    elif not existing:
        raise KustomizeError(f"configMapGenerator {meta['name']}: nothing to {behavior}")
    elif behavior == "replace":
        existing[0]["data"] = data
    elif behavior == "merge":
        existing[0].setdefault("data", {}).update(data)
    else:
        raise KustomizeError(f"configMapGenerator: unknown behavior {behavior}")


def _apply_patch(objects: list[Obj], patch: Obj, *, source: Path) -> None:
    targets = [o for o in objects if _key(o)[1:] == _key(patch)[1:] or _matches_cluster(o, patch)]
    if len(targets) != 1:
        raise KustomizeError(f"{source}: patch matches {len(targets)} objects, expected 1")
    merged = strategic_merge(targets[0], patch)
    targets[0].clear()
    targets[0].update(merged)


def _matches_cluster(obj: Obj, patch: Obj) -> bool:
    # A patch without a namespace matches an object of the same kind and name in any namespace.
    meta = patch.get("metadata", {})
    return (
        "namespace" not in meta
        and obj["kind"] == patch["kind"]
        and obj["metadata"]["name"] == meta.get("name")
    )


def strategic_merge(original: Any, patch: Any, field: str = "") -> Any:
    """Strategic merge patch for maps and the keyed lists in `_MERGE_KEYS`."""
    if isinstance(patch, dict) and isinstance(original, dict):
        if patch.get("$patch") == "replace":
            return {k: v for k, v in patch.items() if k != "$patch"}
        result = copy.deepcopy(original)
        for key, value in patch.items():
            if value is None:
                result.pop(key, None)
            elif key in result:
                result[key] = strategic_merge(result[key], value, key)
            else:
                result[key] = copy.deepcopy(value)
        return result
    if isinstance(patch, list) and isinstance(original, list) and field in _MERGE_KEYS:
        merge_key = _MERGE_KEYS[field]
        result_list = copy.deepcopy(original)
        added: list[Any] = []
        for item in patch:
            index = next(
                (i for i, o in enumerate(result_list) if o.get(merge_key) == item[merge_key]), None
            )
            if item.get("$patch") == "delete":
                if index is not None:
                    del result_list[index]
            elif index is None:
                added.append(copy.deepcopy(item))
            else:
                result_list[index] = strategic_merge(result_list[index], item, field)
        # kustomize (kyaml) puts the items the patch adds before the original ones.
        return added + result_list
    return copy.deepcopy(patch)


def _pod_specs(obj: Obj) -> list[Obj]:
    spec = obj.get("spec", {})
    if obj["kind"] == "Pod":
        return [spec]
    if obj["kind"] == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    template = spec.get("template", {}) if isinstance(spec, dict) else {}
    return [template["spec"]] if "spec" in template else []


def _set_image(objects: list[Obj], image: Obj) -> None:
    for obj in objects:
        for pod_spec in _pod_specs(obj):
            for container in pod_spec.get("containers", []) + pod_spec.get("initContainers", []):
                name, tag = _split_image(container["image"])
                if name != image["name"]:
                    continue
                new_name = image.get("newName", name)
                new_tag = image.get("newTag", tag)
                container["image"] = f"{new_name}:{new_tag}" if new_tag else new_name


def _split_image(reference: str) -> tuple[str, str]:
    name, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag:  # no tag, or the colon was a registry port
        return reference, ""
    return name, tag
