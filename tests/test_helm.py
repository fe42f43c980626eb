"""The Helm chart (helm/qcgate), checked without helm: values against values.schema.json (jsonschema),
templates rendered by tests/helm_render (Go's text/template with sprig, as helm renders them), the
manifests against Kubernetes' own schemas (kubernetes-validate, strict), the custom resources
(ServiceMonitor, ScaledObject, PrometheusRule) by structure, and the chart against the code: every
QCGATE_* variable is a setting, each container's environment builds a valid Settings, and the probed
paths answer on the real API router and status endpoint.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from qcgate.core.settings import Settings
from qcgate.harness.peers import free_port, require_peer

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "qcgate"
RENDERER = Path(__file__).resolve().parent / "helm_render"
MINIMAL = RENDERER / "values-minimal.yaml"
ALL_ON = RENDERER / "values-all-on.yaml"
KUBERNETES_VERSION = "1.30.0"
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule", "ScaledObject"}
SETTING_NAMES = {f"QCGATE_{name.upper()}" for name in Settings.model_fields}
# Read by qcgate but not a field: the settings file's path (core/settings.py).
NON_FIELD_VARIABLES = {"QCGATE_CONFIG"}
GO_SOURCES = Path("/usr/share/gocode/src")
GO_PACKAGES = ("github.com/Masterminds/sprig", "gopkg.in/yaml.v2", "gopkg.in/yaml.v3")
# Secrets the all-on values give (values-all-on.yaml): none may appear outside a Secret.
ALL_ON_SECRETS = ("s3cretpassw0rd", "an0thers3cret", "0123456789abcdef0123")
# What the Secrets named by reference (existingSecret-style) hold in the settings test.
EXISTING_SECRETS = {
    ("qcgate-api", "tokens"): "token-aaaaaaaaaaaaaaaa,token-bbbbbbbbbbbbbbbb",
    ("qcgate-api-clients", "clients"): json.dumps({"ops": {"token": "c" * 24, "role": "operate"}}),
    ("qcgate-database", "url"): "postgresql+psycopg://qcgate:pw@db.example:5432/qcgate",
}

Manifest = dict[str, Any]


# --- rendering ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def renderer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/helm_render built with Debian's Go and sprig (GOPATH mode: nothing is downloaded)."""
    go = shutil.which("go")
    missing = [package for package in GO_PACKAGES if not (GO_SOURCES / package).is_dir()]
    require_peer(
        "Go with sprig and yaml (Debian's golang-go, golang-github-masterminds-sprig-dev,"
        " golang-gopkg-yaml.v2-dev, golang-gopkg-yaml.v3-dev)",
        go is not None and not missing,
        "`bash scripts/peers.sh` installs them",
    )
    assert go is not None
    binary = tmp_path_factory.mktemp("helm-render") / "helm-render"
    environment = {**os.environ, "GO111MODULE": "off", "GOPATH": str(GO_SOURCES.parent), "GOFLAGS": ""}
    environment.setdefault("GOCACHE", str(Path.home() / ".cache" / "go-build"))
    subprocess.run(
        [go, "build", "-o", str(binary), str(RENDERER / "main.go")],
        check=True,
        env=environment,
        timeout=240,
        capture_output=True,
    )
    return binary


def _values_file(tmp_path: Path, overrides: dict[str, Any]) -> Path:
    path = tmp_path / f"values-{len(list(tmp_path.glob('values-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(overrides))
    return path


def render(renderer: Path, *values: Path) -> list[Manifest]:
    """The chart's manifests for these values files (later ones win), as helm template gives them."""
    arguments = [str(renderer), "-name", "qcgate", "-namespace", "imaging"]
    for path in values:
        arguments += ["-f", str(path)]
    result = subprocess.run([*arguments, str(CHART)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def render_error(renderer: Path, *values: Path) -> str:
    arguments = [str(renderer)]
    for path in values:
        arguments += ["-f", str(path)]
    result = subprocess.run([*arguments, str(CHART)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0, "rendering should have failed"
    return result.stderr


@pytest.fixture(scope="session")
def minimal(renderer: Path) -> list[Manifest]:
    return render(renderer, MINIMAL)


@pytest.fixture(scope="session")
def all_on(renderer: Path) -> list[Manifest]:
    return render(renderer, ALL_ON)


@pytest.fixture(params=["minimal", "all_on"])
def manifests(request: pytest.FixtureRequest) -> list[Manifest]:
    return request.getfixturevalue(request.param)


def of_kind(documents: list[Manifest], kind: str) -> list[Manifest]:
    return [document for document in documents if document["kind"] == kind]


def named(documents: list[Manifest], kind: str, name: str) -> Manifest:
    matches = [d for d in of_kind(documents, kind) if d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind} {name}: {len(matches)} rendered"
    return matches[0]


def component(documents: list[Manifest], name: str) -> Manifest:
    """The Deployment of one process kind (receiver, api, sweeper, worker-cpu, worker-gpu)."""
    return named(documents, "Deployment", f"qcgate-{name}")


def workloads(documents: list[Manifest]) -> Iterator[Manifest]:
    for document in documents:
        if document["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield document


def qcgate_workloads(documents: list[Manifest]) -> Iterator[Manifest]:
    """Deployments and the migrate Job: the pods that run the qcgate image."""
    for document in workloads(documents):
        if document["metadata"]["labels"]["app.kubernetes.io/component"] not in ("postgresql", "redis"):
            yield document


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def dockerfile_uid() -> int:
    match = re.search(r"useradd[^\n]*--uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert match, "the Dockerfile names its user's uid"
    return int(match.group(1))


# --- values and their schema -------------------------------------------------------------------------


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of values: maps merge, anything else replaces, null deletes."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def chart_values(*overrides: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    for override in overrides:
        values = merge(values, override)
    return values


def schema_errors(values: dict[str, Any]) -> list[str]:
    schema = json.loads((CHART / "values.schema.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'.'.join(str(part) for part in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(values)
    ]


def minimal_values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(MINIMAL.read_text())
    return loaded


def test_schema_is_draft_07_and_closed() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False
    assert {"allowedCallingAes", "apiTokensSecret"} <= set(schema["required"])
    assert set(chart_values()) <= set(schema["properties"]), "a default value the schema does not know"


@pytest.mark.parametrize("example", [MINIMAL, ALL_ON], ids=["minimal", "all-on"])
def test_schema_accepts_the_example_values(example: Path) -> None:
    assert schema_errors(chart_values(yaml.safe_load(example.read_text()))) == []


BAD_VALUES = {
    "defaults alone: no AE titles, no tokens": ({}, "allowedCallingAes"),
    "missing apiTokensSecret": ({"apiTokensSecret": None}, "'apiTokensSecret' is a required property"),
    "missing allowedCallingAes": ({"allowedCallingAes": None}, "'allowedCallingAes' is a required"),
    "replicas as words": ({"receiver": {"replicas": "two"}}, "'two' is not of type 'integer'"),
    "unknown top-level key": ({"replica": 3}, "Additional properties are not allowed"),
    "unknown component key": ({"api": {"replica": 3}}, "Additional properties are not allowed"),
    "a secret in the ConfigMap settings": (
        {"config": {"webhooks": {"x": {"url": "https://x", "secret": "s" * 16}}}},
        "should not be valid",
    ),
    "a secret as a plain variable": ({"env": {"QCGATE_API_TOKENS": "abc"}}, "should not be valid"),
    "a variable that is not qcgate's": ({"env": {"PATH": "/x"}}, "does not match"),
    "TLS without its Secret": ({"tls": {"dicom": {"enabled": True}}}, "tls.dicom.secretName"),
    "a container without limits": (
        {"workers": {"cpu": {"resources": {"limits": None}}}},
        "'limits' is a required property",
    ),
    "both disruption limits": ({"api": {"pdb": {"minAvailable": 1}}}, "should not be valid"),
    "no database at all": ({"database": {"existingSecret": ""}}, "is not valid under any of the given"),
    "a password that breaks the URL": (
        {"postgresql": {"enabled": True, "auth": {"password": "p@ss/word"}}},
        "does not match",
    ),
    "KEDA without its Prometheus": (
        {"workers": {"cpu": {"autoscaling": {"enabled": True}}}},
        "autoscaling.keda.prometheusServerAddress",
    ),
    "an unknown autoscaling engine": ({"autoscaling": {"engine": "vpa"}}, "is not one of"),
    "a GPU count of zero": ({"workers": {"gpu": {"gpus": 0}}}, "less than the minimum"),
}


@pytest.mark.parametrize(("override", "expected"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_schema_refuses_bad_values(override: dict[str, Any], expected: str) -> None:
    base = minimal_values() if override else {}  # the empty override: the chart's defaults alone
    errors = schema_errors(chart_values(base, override))
    assert any(expected in error for error in errors), errors


def test_templates_refuse_what_is_required(renderer: Path, tmp_path: Path) -> None:
    """helm checks the schema first; the templates say the same where a value is missing."""
    without = {"allowedCallingAes": [], "apiTokensSecret": ""}
    for key, message in (("allowedCallingAes", "allowedCallingAes"), ("apiTokensSecret", "apiTokensSecret")):
        error = render_error(renderer, MINIMAL, _values_file(tmp_path, {key: without[key]}))
        assert message in error
    no_database = _values_file(tmp_path, {"database": {"existingSecret": ""}})
    assert "database.url or database.existingSecret" in render_error(renderer, MINIMAL, no_database)


# --- Kubernetes' schemas and the custom resources ----------------------------------------------------


def test_manifests_validate_against_kubernetes_schemas(manifests: list[Manifest]) -> None:
    kinds = set()
    for document in manifests:
        kinds.add(document["kind"])
        if document["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    assert {"Deployment", "Service", "PersistentVolumeClaim", "Job", "PodDisruptionBudget"} <= kinds


def test_all_on_renders_every_part(all_on: list[Manifest]) -> None:
    deployments = {d["metadata"]["name"] for d in of_kind(all_on, "Deployment")}
    assert deployments == {f"qcgate-{n}" for n in ("receiver", "api", "sweeper", "worker-cpu", "worker-gpu")}
    kinds = {document["kind"] for document in all_on}
    assert {
        "ScaledObject",
        "ServiceMonitor",
        "PrometheusRule",
        "NetworkPolicy",
        "StatefulSet",
        "ConfigMap",
        "Secret",
        "PodDisruptionBudget",
    } <= kinds


def test_default_install_is_lean(minimal: list[Manifest]) -> None:
    deployments = {d["metadata"]["name"] for d in of_kind(minimal, "Deployment")}
    assert deployments == {f"qcgate-{n}" for n in ("receiver", "api", "sweeper", "worker-cpu")}
    kinds = {document["kind"] for document in minimal}
    assert not kinds & (CUSTOM_KINDS | {"NetworkPolicy", "StatefulSet", "HorizontalPodAutoscaler"})


def test_service_monitor_scrapes_the_api_and_every_status_endpoint(all_on: list[Manifest]) -> None:
    monitor = named(all_on, "ServiceMonitor", "qcgate")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]["matchLabels"]
    scraped = [s for s in of_kind(all_on, "Service") if selector.items() <= s["metadata"]["labels"].items()]
    assert {s["metadata"]["name"] for s in scraped} == {"qcgate-api", "qcgate-metrics"}
    service_ports = {port["name"] for service in scraped for port in service["spec"]["ports"]}
    endpoints = {endpoint["port"]: endpoint for endpoint in monitor["spec"]["endpoints"]}
    assert set(endpoints) == {"http", "metrics"} <= service_ports
    assert all(endpoint["path"] == "/metrics" for endpoint in endpoints.values())
    assert endpoints["http"]["scheme"] == "https"  # values-all-on serves the API over TLS
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == ["imaging"]
    # The metrics Service reaches exactly the pods that serve the status endpoint.
    metrics = named(all_on, "Service", "qcgate-metrics")
    reached = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]
        for d in of_kind(all_on, "Deployment")
        if metrics["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
    }
    assert reached == {"receiver", "sweeper", "worker-cpu", "worker-gpu"}


def test_prometheus_rule_and_dashboard_come_from_the_chart_files(all_on: list[Manifest]) -> None:
    rule = named(all_on, "PrometheusRule", "qcgate")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    source = yaml.safe_load((CHART / "files" / "prometheus" / "qcgate-rules.yaml").read_text())
    assert rule["spec"]["groups"] == source["groups"]
    for group in rule["spec"]["groups"]:
        assert group["name"]
        assert group["rules"]
        for entry in group["rules"]:
            assert "alert" in entry or "record" in entry
            assert entry["expr"]
    dashboard = named(all_on, "ConfigMap", "qcgate-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((CHART / "files" / "grafana" / "qcgate-dashboard.json").read_text())
    assert json.loads(dashboard["data"]["qcgate-dashboard.json"]) == shipped


# --- every process kind: probes, resources, no privileges --------------------------------------------


def test_every_container_is_probed_resourced_and_unprivileged(manifests: list[Manifest]) -> None:
    uid = dockerfile_uid()
    for workload in workloads(manifests):
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        assert spec["automountServiceAccountToken"] is False, name
        pod_security = spec["securityContext"]
        assert pod_security["runAsNonRoot"] is True, name
        is_qcgate = workload in list(qcgate_workloads(manifests))
        if is_qcgate:
            assert pod_security["runAsUser"] == uid, f"{name}: the Dockerfile's user is {uid}"
        for container in spec["containers"]:
            where = f"{name}/{container['name']}"
            if workload["kind"] != "Job":
                assert {"livenessProbe", "readinessProbe"} <= set(container), where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), where
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            seccomp = security.get("seccompProfile") or pod_security.get("seccompProfile")
            assert seccomp == {"type": "RuntimeDefault"}, where
            if is_qcgate:
                mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
                assert "/tmp" in mounts, f"{where}: a read-only root needs a writable /tmp"


def test_probes_and_services_name_ports_that_exist(manifests: list[Manifest]) -> None:
    for workload in workloads(manifests):
        for container in pod_spec(workload)["containers"]:
            ports = {port["name"] for port in container.get("ports", [])}
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                action = container.get(probe, {})
                for kind in ("httpGet", "tcpSocket"):
                    if kind in action and isinstance(action[kind]["port"], str):
                        assert action[kind]["port"] in ports, f"{workload['metadata']['name']} {probe}"
    pods = [d["spec"]["template"] for d in workloads(manifests)]
    for service in of_kind(manifests, "Service"):
        selected = [p for p in pods if service["spec"]["selector"].items() <= p["metadata"]["labels"].items()]
        assert selected, f"Service {service['metadata']['name']} selects no pod"
        names = {port["name"] for pod in selected for c in pod["spec"]["containers"] for port in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names, f"{service['metadata']['name']}: {port['targetPort']}"


def test_each_process_kind_runs_its_command_with_its_probes(all_on: list[Manifest]) -> None:
    commands = {
        "receiver": ["scp"],
        "api": ["api"],
        "sweeper": ["sweeper"],
        "worker-cpu": ["worker", "--kind", "cpu"],
        "worker-gpu": ["worker", "--kind", "gpu"],
    }
    for name, args in commands.items():
        container = pod_spec(component(all_on, name))["containers"][0]
        assert container["args"] == args, name
        env = env_of(container)
        assert env["QCGATE_MIGRATE_ON_START"]["value"] == "false", name
        if name == "api":
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                assert container[probe]["httpGet"] == {"path": path, "port": "http", "scheme": "HTTPS"}
            assert {p["name"] for p in container["ports"]} == {"http"}
            continue
        assert env["QCGATE_STATUS_HOST"]["value"] == "0.0.0.0", name
        metrics = {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"]
        assert env["QCGATE_STATUS_PORT"]["value"] == str(metrics), name
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}, name
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}, name
    receiver = pod_spec(component(all_on, "receiver"))["containers"][0]
    assert env_of(receiver)["QCGATE_RECEIVER_RUNS_SWEEPER"]["value"] == "false"
    assert env_of(receiver)["QCGATE_RECEIVER_PROCESSES"]["value"] == "4"
    assert receiver["startupProbe"]["tcpSocket"] == {"port": "dicom"}
    assert component(all_on, "sweeper")["spec"]["replicas"] == 2


def test_the_probed_paths_answer_on_the_real_endpoints(tmp_path: Path, minimal: list[Manifest]) -> None:
    """The chart's probe paths are the ones qcgate serves: the API router's, and the status endpoint's
    (started here on a free port against a SQLite database)."""
    from qcgate.api.health import router
    from qcgate.cli.status_server import start_status_server
    from qcgate.store.database import create_database_engine, session_factory

    api = pod_spec(component(minimal, "api"))["containers"][0]
    api_paths = {api[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe")}
    assert api_paths <= {route.path for route in router.routes}  # type: ignore[attr-defined]

    status_paths = set()
    for name in ("receiver", "sweeper", "worker-cpu"):
        container = pod_spec(component(minimal, name))["containers"][0]
        status_paths |= {container[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe")}
    settings = Settings(data_dir=tmp_path, status_port=free_port())
    sessions = session_factory(create_database_engine(settings.effective_database_url))
    server = start_status_server(settings, sessions, "worker")
    assert server is not None
    try:
        for path in sorted(status_paths):
            url = f"http://127.0.0.1:{settings.status_port}{path}"
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200, path
    finally:
        server.stop()


# --- the chart against the code -----------------------------------------------------------------------


def test_every_qcgate_variable_is_a_setting(manifests: list[Manifest]) -> None:
    for workload in qcgate_workloads(manifests):
        for container in pod_spec(workload)["containers"]:
            names = {name for name in env_of(container) if name.startswith("QCGATE_")}
            unknown = names - SETTING_NAMES - NON_FIELD_VARIABLES
            assert not unknown, f"{workload['metadata']['name']}: {sorted(unknown)} are not qcgate settings"


def test_example_settings_files_name_real_settings() -> None:
    for example in (MINIMAL, ALL_ON):
        config = chart_values(yaml.safe_load(example.read_text())).get("config", {})
        assert set(config) <= set(Settings.model_fields), example.name


def _resolve_environment(
    container: dict[str, Any], documents: list[Manifest], tmp_path: Path
) -> dict[str, str]:
    """What the container's process sees: the image's ENV, then its env entries with Secrets and
    ConfigMaps resolved (the chart's own, or EXISTING_SECRETS) and $(VAR) expanded as the kubelet does."""
    environment = dict(re.findall(r"\b(QCGATE_\w+)=(\S+)", (ROOT / "Dockerfile").read_text()))
    secrets = {
        (document["metadata"]["name"], key): value
        for document in of_kind(documents, "Secret")
        for key, value in document.get("stringData", {}).items()
    }
    secrets |= EXISTING_SECRETS
    secrets |= {
        (name, "password"): "pw"
        for name in ("qcgate-postgresql", "qcgate-redis")
        if (name, "password") not in secrets
    }
    for entry in container.get("env", []):
        if "value" in entry:
            value = re.sub(r"\$\((\w+)\)", lambda m: environment[m.group(1)], entry["value"])
        else:
            reference = entry["valueFrom"]["secretKeyRef"]
            value = secrets[(reference["name"], reference["key"])]
        environment[entry["name"]] = value
    if "QCGATE_CONFIG" in environment:
        config_map = named(documents, "ConfigMap", "qcgate-config")
        settings_file = tmp_path / "qcgate.yaml"
        settings_file.write_text(config_map["data"]["qcgate.yaml"])
        environment["QCGATE_CONFIG"] = str(settings_file)
    return environment


def test_each_container_environment_builds_valid_settings(
    manifests: list[Manifest], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every qcgate container, the migrate Job's included, starts with settings qcgate accepts."""
    for variable in [name for name in os.environ if name.startswith("QCGATE_")]:
        monkeypatch.delenv(variable)
    for workload in qcgate_workloads(manifests):
        container = pod_spec(workload)["containers"][0]
        environment = _resolve_environment(container, manifests, tmp_path)
        with monkeypatch.context() as patch:
            for name, value in environment.items():
                patch.setenv(name, value)
            settings = Settings()
        kind = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        assert settings.effective_database_url.startswith("postgresql+psycopg://"), kind
        if kind == "migrate":
            continue
        assert settings.broker_url is not None, kind
        assert settings.api_tokens, kind
        assert (settings.migrate_on_start, settings.receiver_runs_sweeper) == (False, False), kind
        assert settings.metrics_dir == Path("/run/qcgate/prometheus"), kind
        assert settings.data_dir == Path("/data"), kind
        if kind != "api":
            assert (settings.status_host, settings.status_port) == ("0.0.0.0", 9090), kind


def test_all_on_settings_carry_tls_webhooks_and_the_settings_file(
    all_on: list[Manifest], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in [name for name in os.environ if name.startswith("QCGATE_")]:
        monkeypatch.delenv(variable)
    built = {}
    for name in ("receiver", "api", "worker-cpu"):
        container = pod_spec(component(all_on, name))["containers"][0]
        with monkeypatch.context() as patch:
            for variable, value in _resolve_environment(container, all_on, tmp_path).items():
                patch.setenv(variable, value)
            built[name] = Settings()
    receiver, api, worker = built["receiver"], built["api"], built["worker-cpu"]
    assert receiver.dicom_tls is not None
    assert receiver.dicom_tls.ca_file is not None
    assert str(receiver.dicom_tls.cert_file) == "/etc/qcgate/tls/dicom/tls.crt"
    assert api.http_tls is not None
    assert api.http_tls.ca_file is None
    assert worker.dicom_tls is None
    assert worker.http_tls is None
    assert worker.webhooks["ris"].secret.get_secret_value() == "0123456789abcdef0123"
    assert worker.routing_rules[0].webhooks == ["ris"]
    assert worker.thresholds["snr"].fail == 6
    assert worker.max_associations_per_address == 8
    assert worker.metric_stations == ["MR1", "MR2"]
    assert "s3cretpassw0rd" in worker.effective_database_url
    assert api.api_clients["ops"].role == "operate"


# --- the multi-machine contract: metrics per pod, a shared spool, migrations as a hook ----------------


def test_metrics_dir_is_a_pod_own_empty_dir_never_the_spool(manifests: list[Manifest]) -> None:
    for workload in of_kind(manifests, "Deployment"):
        spec = pod_spec(workload)
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        container = spec["containers"][0]
        metrics_dir = env_of(container)["QCGATE_PROMETHEUS_DIR"]["value"]
        holders = [
            mount
            for mount in container["volumeMounts"]
            if (metrics_dir + "/").startswith(mount["mountPath"].rstrip("/") + "/")
        ]
        assert holders, f"{workload['metadata']['name']}: {metrics_dir} is on the read-only root"
        deepest = max(holders, key=lambda mount: len(mount["mountPath"]))
        assert "emptyDir" in volumes[deepest["name"]], workload["metadata"]["name"]
        assert all("persistentVolumeClaim" not in volumes[m["name"]] for m in holders)
        spool = [m for m in container["volumeMounts"] if "persistentVolumeClaim" in volumes[m["name"]]]
        assert [m["mountPath"] for m in spool] == ["/data"], workload["metadata"]["name"]
        assert env_of(container)["QCGATE_DATA_DIR"]["value"] == "/data"


def test_spool_is_one_read_write_many_claim(manifests: list[Manifest]) -> None:
    claim = named(manifests, "PersistentVolumeClaim", "qcgate-spool")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    for workload in of_kind(manifests, "Deployment"):
        claims = {
            volume["persistentVolumeClaim"]["claimName"]
            for volume in pod_spec(workload)["volumes"]
            if "persistentVolumeClaim" in volume
        }
        assert claims == {"qcgate-spool"}, workload["metadata"]["name"]


def test_migrations_run_once_as_a_hook(renderer: Path, minimal: list[Manifest], tmp_path: Path) -> None:
    job = named(minimal, "Job", "qcgate-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    assert pod_spec(job)["containers"][0]["args"] == ["migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    # A URL given as a value: the hook gets a Secret of its own, made before it (the release's do not
    # exist yet when a pre-install hook runs).
    by_value = render(
        renderer,
        MINIMAL,
        _values_file(
            tmp_path, {"database": {"existingSecret": "", "url": "postgresql+psycopg://q:pw@db:5432/q"}}
        ),
    )
    secret = named(by_value, "Secret", "qcgate-migrate")
    job = named(by_value, "Job", "qcgate-migrate")
    assert secret["metadata"]["annotations"]["helm.sh/hook"] == job["metadata"]["annotations"]["helm.sh/hook"]
    weights = [int(d["metadata"]["annotations"]["helm.sh/hook-weight"]) for d in (secret, job)]
    assert weights[0] < weights[1]
    reference = env_of(pod_spec(job)["containers"][0])["QCGATE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    assert reference == {"name": "qcgate-migrate", "key": "database-url"}
    # With the bundled PostgreSQL the database is part of the release: the first migration follows it.
    bundled = render(renderer, ALL_ON)
    assert named(bundled, "Job", "qcgate-migrate")["metadata"]["annotations"]["helm.sh/hook"] == (
        "post-install,pre-upgrade"
    )


# --- GPU workers and autoscaling ----------------------------------------------------------------------


def test_gpu_workers_get_gpus_their_nodes_and_their_image(all_on: list[Manifest]) -> None:
    gpu = component(all_on, "worker-gpu")
    spec = pod_spec(gpu)
    container = spec["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["image"] == "registry.example.org/qcgate:0.1.0-gpu"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["runtimeClassName"] == "nvidia"
    cpu = pod_spec(component(all_on, "worker-cpu"))["containers"][0]
    assert "nvidia.com/gpu" not in cpu["resources"]["limits"]
    assert cpu["image"] == "registry.example.org/qcgate:0.1.0"


def test_with_gpu_workers_every_process_queues_assessments_for_them(
    all_on: list[Manifest], minimal: list[Manifest]
) -> None:
    """Without QCGATE_GPU_QUEUE_ENABLED the sweeper would queue series where no gpu worker listens."""
    for name in ("sweeper", "receiver", "api", "worker-cpu", "worker-gpu"):
        container = pod_spec(component(all_on, name))["containers"][0]
        assert env_of(container)["QCGATE_GPU_QUEUE_ENABLED"]["value"] == "true", name
    for workload in qcgate_workloads(minimal):
        assert "QCGATE_GPU_QUEUE_ENABLED" not in env_of(pod_spec(workload)["containers"][0])


def test_keda_scales_workers_on_queue_depth(all_on: list[Manifest]) -> None:
    deployments = {d["metadata"]["name"]: d for d in of_kind(all_on, "Deployment")}
    scaled = of_kind(all_on, "ScaledObject")
    assert {s["metadata"]["name"] for s in scaled} == {"qcgate-worker-cpu", "qcgate-worker-gpu"}
    for scaled_object in scaled:
        assert scaled_object["apiVersion"] == "keda.sh/v1alpha1"
        target = scaled_object["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment"
        assert target["name"] in deployments
        assert "replicas" not in deployments[target["name"]]["spec"], "the autoscaler owns replicas"
        (trigger,) = scaled_object["spec"]["triggers"]
        assert trigger["type"] == "prometheus"
        assert "qcgate_queue_depth" in trigger["metadata"]["query"]
        assert float(trigger["metadata"]["threshold"]) > 0
        assert trigger["metadata"]["serverAddress"].startswith("http")
        low, high = scaled_object["spec"]["minReplicaCount"], scaled_object["spec"]["maxReplicaCount"]
        assert 0 <= low <= high
    assert named(all_on, "ScaledObject", "qcgate-worker-gpu")["spec"]["minReplicaCount"] == 0


def test_hpa_on_an_external_metric_is_the_other_engine(renderer: Path, tmp_path: Path) -> None:
    documents = render(renderer, ALL_ON, _values_file(tmp_path, {"autoscaling": {"engine": "hpa"}}))
    assert not of_kind(documents, "ScaledObject")
    hpas = of_kind(documents, "HorizontalPodAutoscaler")
    assert {h["metadata"]["name"] for h in hpas} == {"qcgate-worker-cpu", "qcgate-worker-gpu"}
    for hpa in hpas:
        kubernetes_validate.validate(hpa, KUBERNETES_VERSION, strict=True)
        (metric,) = hpa["spec"]["metrics"]
        assert metric["type"] == "External"
        assert metric["external"]["metric"]["name"] == "qcgate_queue_depth"
        assert metric["external"]["target"]["type"] == "AverageValue"
        assert hpa["spec"]["minReplicas"] >= 1  # an HPA cannot scale to zero


# --- secrets, TLS and the network ---------------------------------------------------------------------


def test_secrets_stay_in_secrets(all_on: list[Manifest]) -> None:
    for document in all_on:
        text = yaml.safe_dump(document)
        for secret in ALL_ON_SECRETS:
            if document["kind"] != "Secret":
                assert secret not in text, f"{document['kind']} {document['metadata']['name']} holds a secret"
    held = "".join(yaml.safe_dump(d) for d in of_kind(all_on, "Secret"))
    assert all(secret in held for secret in ALL_ON_SECRETS)
    for workload in qcgate_workloads(all_on):
        env = env_of(pod_spec(workload)["containers"][0])
        for name in ("QCGATE_API_TOKENS", "QCGATE_API_CLIENTS", "QCGATE_WEBHOOKS", "POSTGRES_PASSWORD"):
            if name in env:
                assert "valueFrom" in env[name], f"{workload['metadata']['name']}: {name}"


def test_tls_keys_are_mounted_read_only_where_they_are_used(all_on: list[Manifest]) -> None:
    expected = {"receiver": ("tls-dicom", "qcgate-dicom-tls"), "api": ("tls-http", "qcgate-http-tls")}
    for workload in of_kind(all_on, "Deployment"):
        name = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        spec = pod_spec(workload)
        tls_volumes = {v["name"]: v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
        if name not in expected:
            assert not tls_volumes, f"{name} mounts {tls_volumes}"
            continue
        volume, secret = expected[name]
        assert tls_volumes == {volume: secret}
        (mount,) = [m for m in spec["containers"][0]["volumeMounts"] if m["name"] == volume]
        assert mount["readOnly"] is True


def test_network_policy_admits_dicom_only_from_the_allowed_cidrs(all_on: list[Manifest]) -> None:
    receiver = named(all_on, "NetworkPolicy", "qcgate-receiver")
    dicom_rules = [r for r in receiver["spec"]["ingress"] if r["ports"][0]["port"] == "dicom"]
    (rule,) = dicom_rules
    assert [peer["ipBlock"]["cidr"] for peer in rule["from"]] == ["10.20.0.0/16", "10.30.4.0/24"]
    metrics_rules = [r for r in receiver["spec"]["ingress"] if r["ports"][0]["port"] == "metrics"]
    assert metrics_rules[0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    api = named(all_on, "NetworkPolicy", "qcgate-api")
    peers = api["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}} in peers
    egress = named(all_on, "NetworkPolicy", "qcgate-egress")["spec"]["egress"]
    ports = {port["port"] for rule in egress for port in rule["ports"]}
    assert {53, 5432, 6379, 104, 443} <= ports
    database = named(all_on, "NetworkPolicy", "qcgate-postgresql")["spec"]["ingress"][0]["from"][0]
    assert database["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "qcgate"
