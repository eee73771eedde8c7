"""Render the kustomize overlays of deploy/kubernetes in Python and validate every manifest offline (make lint).

`python -m scripts.k8s_manifests check` validates each manifest file under deploy/kubernetes and the rendered
output of every overlay against the Kubernetes JSON schemas of KUBERNETES_VERSION, strictly (an unknown field
is an error), read from the files the kubernetes-validate package ships, each parsed once: no cluster, no
network. A kind without a schema there (a CRD) is an error too, so nothing goes unchecked. Exit 1 naming each
problem. `python -m scripts.k8s_manifests render deploy/kubernetes/overlays/production` prints what
`kubectl kustomize` prints (as one YAML stream), for a reader without kubectl.

The renderer implements the part of kustomize these files use, and refuses any other field, so it cannot
silently differ: `resources` (files and directories holding a kustomization.yaml), `namespace` (set on every
namespaced object), `replicas` (by Deployment or StatefulSet name) and `images` (name to newName/newTag).
tests/deploy/test_manifests.py compares it with the real `kubectl kustomize` when kubectl is installed.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from collections.abc import Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "deploy" / "kubernetes"
# The Kubernetes version whose schemas the manifests must satisfy (kubernetes-validate ships them).
KUBERNETES_VERSION = "1.34"
KUSTOMIZATION = "kustomization.yaml"
SUPPORTED_FIELDS = frozenset({"apiVersion", "kind", "namespace", "resources", "replicas", "images"})
CLUSTER_SCOPED = frozenset({"Namespace", "PersistentVolume", "StorageClass", "ClusterRole", "ClusterRoleBinding"})

Manifest = dict[str, Any]
# libyaml's parser when PyYAML has it (its wheels do): the pure-Python one was half of `check`'s time.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ManifestError(Exception):
    """A manifest or kustomization that cannot be read or rendered; the message names the file."""


def load_documents(path: Path) -> list[Manifest]:
    """The non-empty YAML documents of a file, each a mapping."""
    try:
        text = path.read_text(encoding="utf-8")
        documents = [document for document in yaml.load_all(text, Loader=LOADER) if document]
    except (OSError, yaml.YAMLError) as error:
        raise ManifestError(f"{display(path)}: {error}") from error
    for document in documents:
        if not isinstance(document, dict):
            raise ManifestError(f"{display(path)}: a document is not a mapping")
    return documents


def display(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def render(directory: Path) -> list[Manifest]:
    """The objects a kustomization directory renders to, in the order its resources list them."""
    kustomization_file = directory / KUSTOMIZATION
    if not kustomization_file.is_file():
        raise ManifestError(f"{display(directory)}: no {KUSTOMIZATION}")
    (kustomization,) = load_documents(kustomization_file) or [{}]
    unsupported = set(kustomization) - SUPPORTED_FIELDS
    if unsupported:
        raise ManifestError(
            f"{display(kustomization_file)}: fields this renderer does not implement: {sorted(unsupported)}"
        )
    objects: list[Manifest] = []
    for entry in kustomization.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            objects.extend(render(target))
        elif target.is_file():
            objects.extend(copy.deepcopy(load_documents(target)))
        else:
            raise ManifestError(f"{display(kustomization_file)}: resource {entry!r} does not exist")
    for item in kustomization.get("replicas", []):
        set_replicas(objects, item["name"], int(item["count"]), kustomization_file)
    for image in kustomization.get("images", []):
        for container in containers(objects):
            name, _, _ = str(container.get("image", "")).partition(":")
            if name == image["name"]:
                container["image"] = (
                    f"{image.get('newName', name)}:{image['newTag']}"
                    if "newTag" in image
                    else image.get("newName", name)
                )
    if "namespace" in kustomization:
        for manifest in objects:
            if manifest.get("kind") not in CLUSTER_SCOPED:
                manifest.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
    return objects


def set_replicas(objects: list[Manifest], name: str, count: int, source: Path) -> None:
    matched = [m for m in objects if m.get("kind") in {"Deployment", "StatefulSet"} and m["metadata"]["name"] == name]
    if not matched:
        raise ManifestError(f"{display(source)}: replicas for {name!r}, which no resource defines")
    for manifest in matched:
        manifest["spec"]["replicas"] = count


def pod_spec(manifest: Manifest) -> Manifest | None:
    """The pod spec of a workload (Deployment, StatefulSet, Job; CronJob's job template), else None."""
    spec = manifest.get("spec", {})
    if manifest.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    template = spec.get("template")
    return template.get("spec") if isinstance(template, dict) else None


def containers(objects: list[Manifest]) -> Iterator[Manifest]:
    for manifest in objects:
        spec = pod_spec(manifest)
        if spec is not None:
            yield from spec.get("initContainers", [])
            yield from spec.get("containers", [])


def overlays(root: Path) -> list[Path]:
    return sorted(path for path in (root / "overlays").iterdir() if (path / KUSTOMIZATION).is_file())


def manifest_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*.yaml") if path.name != KUSTOMIZATION)


@cache
def schema_directory() -> Any:
    """kubernetes-validate's strict schemas of KUBERNETES_VERSION (the files it ships; no network)."""
    schemas = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    directory = schemas.joinpath(f"v{KUBERNETES_VERSION}.0-local-strict")
    if not directory.is_dir():
        raise ManifestError(f"kubernetes-validate ships no schemas for Kubernetes {KUBERNETES_VERSION}")
    return directory


@cache
def validator(kind: str, api_version: str) -> jsonschema.Draft202012Validator | None:
    """A validator for one kind (its schema and the shared definitions, each read once), None without a schema."""
    # As kubernetes-validate names the files: rbac.authorization.k8s.io/v1 -> rbac-v1, apps/v1 -> apps-v1.
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema_file = schema_directory().joinpath(f"{kind.lower()}-{group_version}.json")
    if not schema_file.is_file():
        return None
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    registry: Registry[Any] = Resource.from_contents(schema) @ Registry()
    registry = definitions() @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


@cache
def definitions() -> Resource[Any]:
    text = schema_directory().joinpath("_definitions.json").read_text(encoding="utf-8")
    return Resource.from_contents(json.loads(text))


def validate(manifest: Manifest, where: str) -> list[str]:
    """What is wrong with one object against the schemas of KUBERNETES_VERSION (strict), as messages."""
    name = f"{manifest.get('kind', '?')}/{manifest.get('metadata', {}).get('name', '?')}"
    kind, api_version = manifest.get("kind"), manifest.get("apiVersion")
    if not isinstance(kind, str) or not isinstance(api_version, str):
        return [f"{where}: {name}: no kind or apiVersion"]
    checker = validator(kind, api_version)
    if checker is None:
        return [f"{where}: {name}: no schema for kind {kind} ({api_version}) in Kubernetes {KUBERNETES_VERSION}"]
    return [
        f"{where}: {name}: {'.'.join(str(part) for part in error.path)}: {error.message}"
        for error in sorted(checker.iter_errors(manifest), key=lambda error: list(map(str, error.path)))
    ]


def check(root: Path = MANIFESTS) -> list[str]:
    """Every problem of the manifests under `root` and of each overlay's rendered output."""
    problems: list[str] = []
    for path in manifest_files(root):
        try:
            problems += [message for manifest in load_documents(path) for message in validate(manifest, display(path))]
        except ManifestError as error:
            problems.append(str(error))
    for overlay in overlays(root):
        try:
            rendered = render(overlay)
        except ManifestError as error:
            problems.append(str(error))
            continue
        where = f"{display(overlay)} (rendered)"
        problems += [message for manifest in rendered for message in validate(manifest, where)]
        seen: set[tuple[str, str]] = set()
        for manifest in rendered:
            key = (manifest.get("kind", ""), manifest.get("metadata", {}).get("name", ""))
            if key in seen:
                problems.append(f"{where}: {key[0]}/{key[1]} is defined twice")
            seen.add(key)
    if not overlays(root):
        problems.append(f"{display(root)}: no overlay to render")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.k8s_manifests", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check_command = commands.add_parser(
        "check", help=f"validate every manifest against Kubernetes {KUBERNETES_VERSION}"
    )
    check_command.add_argument("--root", type=Path, default=MANIFESTS, help="the manifests' directory")
    render_command = commands.add_parser("render", help="print what an overlay renders to")
    render_command.add_argument("overlay", type=Path)
    arguments = parser.parse_args(argv)
    if arguments.command == "render":
        try:
            print(yaml.safe_dump_all(render(arguments.overlay.resolve()), sort_keys=False), end="")
        except ManifestError as error:
            print(f"k8s_manifests: {error}", file=sys.stderr)
            return 1
        return 0
    problems = check(arguments.root.resolve())
    for problem in problems:
        print(problem, file=sys.stderr)
    count = len(manifest_files(arguments.root.resolve()))
    if problems:
        print(
            f"Kubernetes manifests: {len(problems)} problem(s) against Kubernetes {KUBERNETES_VERSION}", file=sys.stderr
        )
        return 1
    print(f"Kubernetes manifests: {count} files and every overlay valid against Kubernetes {KUBERNETES_VERSION}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
