"""The security defaults hold in both rendered overlays, and the check fails when any one of them is removed.

Each mutation below removes one default from a copy of the rendered production overlay (or of its files, for
the NetworkPolicy) and the check must name it: a default cannot silently go.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from scripts.k8s_manifests import MANIFESTS, Manifest, check, render
from tests.deploy.security import security_problems


def rendered(overlay: str) -> list[Manifest]:
    return render(MANIFESTS / "overlays" / overlay)


@pytest.mark.parametrize("overlay", ["local", "production"])
def test_every_rendered_overlay_keeps_the_security_defaults(overlay: str) -> None:
    assert security_problems(rendered(overlay), production=overlay == "production") == []


def find(objects: list[Manifest], kind: str, name: str) -> Manifest:
    return next(m for m in objects if m["kind"] == kind and m["metadata"]["name"] == name)


def container(objects: list[Manifest], name: str) -> Manifest:
    deployment: Manifest = find(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]
    return deployment


def pod(objects: list[Manifest], name: str) -> Manifest:
    spec: Manifest = find(objects, "Deployment", name)["spec"]["template"]["spec"]
    return spec


def remove_run_as_non_root(objects: list[Manifest]) -> None:
    del pod(objects, "crm-mcp")["securityContext"]["runAsNonRoot"]


def drop_seccomp_profile(objects: list[Manifest]) -> None:
    del pod(objects, "auth-server")["securityContext"]["seccompProfile"]


def writable_root_filesystem(objects: list[Manifest]) -> None:
    container(objects, "auth-server")["securityContext"]["readOnlyRootFilesystem"] = False


def keep_capabilities(objects: list[Manifest]) -> None:
    del container(objects, "tickets-mcp")["securityContext"]["capabilities"]


def allow_privilege_escalation(objects: list[Manifest]) -> None:
    del find(objects, "Job", "migrate")["spec"]["template"]["spec"]["containers"][0]["securityContext"][
        "allowPrivilegeEscalation"
    ]


def mount_service_account_token(objects: list[Manifest]) -> None:
    pod(objects, "crm-api")["automountServiceAccountToken"] = True


def inline_secret_value(objects: list[Manifest]) -> None:
    environment = container(objects, "crm-mcp")["env"]
    index = next(i for i, v in enumerate(environment) if v["name"] == "CRM_MCP_VAULT_KEYS")
    environment[index] = {"name": "CRM_MCP_VAULT_KEYS", "value": "k1:not-a-real-key"}


def inline_database_url(objects: list[Manifest]) -> None:
    container(objects, "crm-api")["env"].append({"name": "DATABASE_URL", "value": "postgresql://u:p@db/crm_api"})


def add_a_secret_object(objects: list[Manifest]) -> None:
    objects.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "stringData": {"k": "v"}})


def drop_readiness_probe(objects: list[Manifest]) -> None:
    del container(objects, "crm-mcp")["readinessProbe"]


def drop_liveness_probe(objects: list[Manifest]) -> None:
    del container(objects, "weather-api")["livenessProbe"]


def drop_memory_limit(objects: list[Manifest]) -> None:
    del container(objects, "calendar-api")["resources"]["limits"]["memory"]


def drop_default_deny(objects: list[Manifest]) -> None:
    objects.remove(find(objects, "NetworkPolicy", "default-deny"))


def open_metrics_to_everyone(objects: list[Manifest]) -> None:
    find(objects, "NetworkPolicy", "metrics-from-monitoring")["spec"]["ingress"][0]["from"] = [{"podSelector": {}}]


def single_replica(objects: list[Manifest]) -> None:
    find(objects, "Deployment", "auth-server")["spec"]["replicas"] = 1


def drop_autoscaler(objects: list[Manifest]) -> None:
    objects.remove(find(objects, "HorizontalPodAutoscaler", "crm-mcp"))


def drop_disruption_budget(objects: list[Manifest]) -> None:
    objects.remove(find(objects, "PodDisruptionBudget", "auth-server"))


MUTATIONS: dict[str, tuple[Callable[[list[Manifest]], None], str]] = {
    "runAsNonRoot": (remove_run_as_non_root, "Deployment/crm-mcp: pod securityContext.runAsNonRoot is not true"),
    "seccompProfile": (drop_seccomp_profile, "Deployment/auth-server: pod seccompProfile is not RuntimeDefault"),
    "readOnlyRootFilesystem": (writable_root_filesystem, "container auth-server: readOnlyRootFilesystem"),
    "capabilities": (keep_capabilities, "container tickets-mcp: capabilities do not drop ALL"),
    "allowPrivilegeEscalation": (allow_privilege_escalation, "Job/migrate container crm-mcp: allowPrivilege"),
    "service account token": (mount_service_account_token, "Deployment/crm-api: automountServiceAccountToken"),
    "inline vault keys": (inline_secret_value, "CRM_MCP_VAULT_KEYS is not from a Secret"),
    "inline DATABASE_URL": (inline_database_url, "container crm-api: DATABASE_URL is not from a Secret"),
    "Secret object": (add_a_secret_object, "Secret/x: a Secret in the manifests"),
    "readinessProbe": (drop_readiness_probe, "container crm-mcp: no readinessProbe"),
    "livenessProbe": (drop_liveness_probe, "container weather-api: no livenessProbe"),
    "memory limit": (drop_memory_limit, "container calendar-api: resources.limits lacks cpu or memory"),
    "default deny": (drop_default_deny, "no default-deny NetworkPolicy"),
    "metrics port": (open_metrics_to_everyone, "metrics-from-monitoring: admits the metrics port"),
    "replicas": (single_replica, "Deployment/auth-server: fewer than 2 replicas"),
    "autoscaler": (drop_autoscaler, "Deployment/crm-mcp: no HorizontalPodAutoscaler"),
    "disruption budget": (drop_disruption_budget, "Deployment/auth-server: no PodDisruptionBudget"),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_removing_one_default_fails_the_check(mutation: str) -> None:
    objects = copy.deepcopy(rendered("production"))
    mutate, expected = MUTATIONS[mutation]
    mutate(objects)
    problems = security_problems(objects, production=True)
    assert any(expected in problem for problem in problems), problems


def test_a_deployment_without_its_network_policy_fails_the_check(tmp_path: Path) -> None:
    """Mutating a copy of the files: crm-api's NetworkPolicy deleted from base/network-policies.yaml."""
    copy_root = tmp_path / "kubernetes"
    shutil.copytree(MANIFESTS, copy_root)
    policies = copy_root / "base" / "network-policies.yaml"
    documents = policies.read_text(encoding="utf-8").split("\n---\n")
    kept = [document for document in documents if "\n  name: crm-api\n" not in document]
    assert len(kept) == len(documents) - 1
    policies.write_text("\n---\n".join(kept), encoding="utf-8")
    problems = security_problems(render(copy_root / "overlays" / "production"), production=True)
    assert "Deployment/crm-api: no NetworkPolicy selects its pods" in problems


def test_the_hosted_provider_switch_renders_valid_and_hardened(tmp_path: Path) -> None:
    """docs/kubernetes.md#a-hosted-provider-instead, done on a copy: ../../hosted-provider for ../../auth-server."""
    copy_root = tmp_path / "kubernetes"
    shutil.copytree(MANIFESTS, copy_root)
    kustomization = copy_root / "overlays" / "production" / "kustomization.yaml"
    text = kustomization.read_text(encoding="utf-8")
    assert "  - ../../auth-server\n" in text
    assert "  - auth-server.yaml\n" in text
    kustomization.write_text(
        text.replace("  - ../../auth-server\n", "  - ../../hosted-provider\n").replace("  - auth-server.yaml\n", "")
    )
    objects = render(copy_root / "overlays" / "production")
    assert not [o for o in objects if o["metadata"]["name"].startswith("auth-server")]
    assert check(copy_root) == []
    assert security_problems(objects, production=True, highly_available=("crm-mcp",)) == []
    egress = find(objects, "NetworkPolicy", "hosted-provider-egress")
    assert egress["spec"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 443}]
