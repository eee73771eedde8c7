"""The security defaults every rendered overlay of deploy/kubernetes must keep, as a list of what is missing.

Checked per workload (Deployment, StatefulSet, Job): non-root, RuntimeDefault seccomp, no service-account
token, and per container a read-only root filesystem, no privilege escalation, every capability dropped,
requests and limits; probes on every long-running container; secrets only through secretKeyRef (no Secret
object, no secret-looking variable with an inline value); a default-deny NetworkPolicy plus one of its own
(by name, ruling ingress) for each Deployment and StatefulSet; the metrics port admitted only from the
monitoring namespace. `production=True` adds the availability defaults: crm-mcp and auth-server with 2+
replicas, a HorizontalPodAutoscaler and a PodDisruptionBudget each.
"""

from __future__ import annotations

import re
from typing import Any

from scripts.k8s_manifests import Manifest, pod_spec

WORKLOADS = frozenset({"Deployment", "StatefulSet", "Job"})
LONG_RUNNING = frozenset({"Deployment", "StatefulSet"})
# Variables that carry a secret: they must come from a Secret by name.
SECRET_VARIABLE = re.compile(r"PASSWORD|SECRET|_KEYS?$|^DATABASE_URL$|^REDIS_URL$")
METRICS_PORT = 9464
MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
HIGHLY_AVAILABLE = ("crm-mcp", "auth-server")


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels and matchExpressions with In) selects these labels."""
    if not all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        if expression["operator"] != "In" or labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def name_of(manifest: Manifest) -> str:
    return f"{manifest['kind']}/{manifest['metadata']['name']}"


def workload_problems(manifest: Manifest) -> list[str]:
    spec = pod_spec(manifest) or {}
    where = name_of(manifest)
    problems = []
    if spec.get("securityContext", {}).get("runAsNonRoot") is not True:
        problems.append(f"{where}: pod securityContext.runAsNonRoot is not true")
    if spec.get("securityContext", {}).get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: pod seccompProfile is not RuntimeDefault (Pod Security restricted needs it)")
    if spec.get("automountServiceAccountToken") is not False:
        problems.append(f"{where}: automountServiceAccountToken is not false")
    for container in spec.get("initContainers", []) + spec.get("containers", []):
        at = f"{where} container {container['name']}"
        context = container.get("securityContext", {})
        if context.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{at}: readOnlyRootFilesystem is not true")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{at}: allowPrivilegeEscalation is not false")
        if "ALL" not in context.get("capabilities", {}).get("drop", []):
            problems.append(f"{at}: capabilities do not drop ALL")
        if context.get("runAsUser") == 0 or context.get("runAsNonRoot") is False:
            problems.append(f"{at}: runs as root")
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(resources.get(kind, {})):
                problems.append(f"{at}: resources.{kind} lacks cpu or memory")
        if manifest["kind"] in LONG_RUNNING:
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in container:
                    problems.append(f"{at}: no {probe}")
        for variable in container.get("env", []):
            if SECRET_VARIABLE.search(variable["name"]) and "secretKeyRef" not in variable.get("valueFrom", {}):
                problems.append(f"{at}: {variable['name']} is not from a Secret (secretKeyRef)")
    return problems


def own_policy(policy: Manifest, labels: dict[str, str]) -> bool:
    """Whether `policy` is the pods' own: it selects them by app.kubernetes.io/name and rules their ingress."""
    selector = policy["spec"].get("podSelector", {})
    by_name = "app.kubernetes.io/name" in selector.get("matchLabels", {}) or any(
        expression["key"] == "app.kubernetes.io/name" for expression in selector.get("matchExpressions", [])
    )
    return by_name and "Ingress" in policy["spec"].get("policyTypes", []) and selects(selector, labels)


def network_problems(objects: list[Manifest]) -> list[str]:
    policies = [m for m in objects if m["kind"] == "NetworkPolicy"]
    problems = []
    default_deny = [
        p
        for p in policies
        if p["spec"].get("podSelector") == {}
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    if not default_deny:
        problems.append("no default-deny NetworkPolicy (empty podSelector, Ingress and Egress, no rules)")
    for manifest in objects:
        if manifest["kind"] not in LONG_RUNNING:
            continue
        labels = manifest["spec"]["template"]["metadata"].get("labels", {})
        if not any(own_policy(p, labels) for p in policies):
            problems.append(f"{name_of(manifest)}: no NetworkPolicy selects its pods")
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            ports = {port.get("port") for port in rule.get("ports", [])}
            if (not ports or METRICS_PORT in ports) and rule.get("from") != [MONITORING]:
                problems.append(f"{name_of(policy)}: admits the metrics port from outside the monitoring namespace")
    return problems


def availability_problems(objects: list[Manifest], highly_available: tuple[str, ...]) -> list[str]:
    problems = []
    for name in highly_available:
        deployment = next((m for m in objects if m["kind"] == "Deployment" and m["metadata"]["name"] == name), None)
        if deployment is None or deployment["spec"].get("replicas", 1) < 2:
            problems.append(f"Deployment/{name}: fewer than 2 replicas")
        autoscalers = [
            m
            for m in objects
            if m["kind"] == "HorizontalPodAutoscaler"
            and m["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
            and m["spec"].get("minReplicas", 1) >= 2
        ]
        if not autoscalers:
            problems.append(f"Deployment/{name}: no HorizontalPodAutoscaler with minReplicas >= 2")
        labels = deployment["spec"]["template"]["metadata"]["labels"] if deployment else {}
        budgets = [m for m in objects if m["kind"] == "PodDisruptionBudget" and selects(m["spec"]["selector"], labels)]
        if not budgets:
            problems.append(f"Deployment/{name}: no PodDisruptionBudget")
    return problems


def security_problems(
    objects: list[Manifest], *, production: bool, highly_available: tuple[str, ...] = HIGHLY_AVAILABLE
) -> list[str]:
    """Every default of the module docstring that `objects` (one rendered overlay) lacks."""
    problems = [
        f"{name_of(m)}: a Secret in the manifests (secrets are created out of band)"
        for m in objects
        if m["kind"] == "Secret"
    ]
    for manifest in objects:
        if manifest["kind"] in WORKLOADS:
            problems += workload_problems(manifest)
    problems += network_problems(objects)
    if production:
        problems += availability_problems(objects, highly_available)
    return problems
