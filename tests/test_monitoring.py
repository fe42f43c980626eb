"""The Grafana dashboard and the Prometheus alert rules, checked against the code and a real Prometheus.

Static checks (fast): the dashboard is provisioning-ready, and every metric name that the dashboard
and the rules use is one that qcgate exposes, derived from the code (its instruments and the sweeper
leader's gauges), never from a hand-written list. Every alert has a firing and a silent case in the
rule tests.

Real peers (Debian's ``prometheus`` package, installed by scripts/peers.sh): ``promtool check rules``
and ``promtool test rules``; then a real ``qcgate serve`` receives series from DCMTK (two stations, a
pass and a fail), a refused instance and a refused connection, delivers to a webhook and dead-letters
another, while a real ``prometheus`` scrapes its /metrics every second. Every dashboard expression must
return data from that Prometheus, and the rules must load healthy and fire on the dead letter.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import httpx
import pydicom
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import MRImageStorage

from qcgate.core.errors import MissingPixelData
from qcgate.core.observability import OTHER_STATION, Instruments, instruments, station_label
from qcgate.core.settings import get_settings
from qcgate.harness.peers import PeerProcess, QCGate, free_port, require_peer, storescu
from qcgate.harness.webhook_receiver import WebhookReceiver
from qcgate.store.database import create_database_engine, session_factory, upgrade_database
from qcgate.synthetic.demo_series import noisy_phantom
from qcgate.synthetic.dicom_series import mr_series_datasets, write_series
from qcgate.worker.gauges import LeaderGauges
from qcgate.worker.leadership import SweeperLeadership
from tests.test_delivery import SPLIT_THRESHOLDS, metric, start_with, wait_for_deliveries

FILES = Path(__file__).resolve().parent.parent / "helm" / "qcgate" / "files"
DASHBOARD = FILES / "grafana" / "qcgate-dashboard.json"
RULES = FILES / "prometheus" / "qcgate-rules.yaml"
RULE_TESTS = FILES / "prometheus" / "qcgate-rules.test.yaml"
PROMETHEUS, PROMTOOL = "/usr/bin/prometheus", "/usr/bin/promtool"
# What Grafana substitutes in the expressions; an unknown variable fails the test that expands it.
DASHBOARD_VARIABLES = {"__rate_interval": "1m", "station": ".*"}
PROMETHEUS_OWN = {"up"}  # series Prometheus makes itself for every target
METRIC_NAME = re.compile(r"\bqcgate_[a-z0-9_]+\b")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
STATION, OTHER_CONFIGURED = "MR-EAST", "MR-WEST"
# What issue 13 asks the dashboard to show (not a list of what qcgate exposes: that comes from the code).
ISSUE_13_PANELS = {
    "qcgate_instances_received_total",
    "qcgate_instances_rejected_total",
    "qcgate_connections_refused_total",
    "qcgate_queue_depth",
    "qcgate_receive_to_result_seconds_bucket",
    "qcgate_assessment_seconds_bucket",
    "qcgate_series_assessed_total",
    "qcgate_series_quality_bucket",
    "qcgate_delivery_attempts_total",
    "qcgate_delivery_retries_total",
    "qcgate_delivery_dead_letters_total",
    "qcgate_spool_free_bytes",
}


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def dashboard_panels() -> list[dict[str, Any]]:
    """Every panel but rows (which hold no query), nested ones included."""
    found = []
    for panel in dashboard()["panels"]:
        found.extend(panel.get("panels", []))
        if panel["type"] != "row":
            found.append(panel)
    return found


def dashboard_expressions() -> list[str]:
    return [target["expr"] for panel in dashboard_panels() for target in panel["targets"]]


def expand(expression: str) -> str:
    """The expression as Grafana sends it, with the dashboard's variables replaced."""
    return re.sub(r"\$\{?(\w+)\}?", lambda match: DASHBOARD_VARIABLES[match.group(1)], expression)


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def exposed_metrics(data_dir: Path) -> set[str]:
    """The sample names qcgate's /metrics can carry, from the code: every instrument in
    :class:`Instruments` (counters as ``_total``, histograms as ``_bucket``/``_count``/``_sum``) and
    the gauges the sweeper leader collects, here from a migrated SQLite store this process leads."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    families = [
        family
        for field in dataclasses.fields(Instruments)
        for family in getattr(instruments(), field.name).describe()
    ]
    settings = get_settings(data_dir=data_dir)
    upgrade_database(settings.effective_database_url)
    engine = create_database_engine(settings.effective_database_url)
    leadership = SweeperLeadership(settings)
    try:
        assert leadership.held(), "a fresh data_dir has no other sweeper"
        families.extend(LeaderGauges(settings, session_factory(engine), leadership).collect())
    finally:
        leadership.release()
        engine.dispose()
    return {family.name + suffix for family in families for suffix in suffixes[family.type]}


# --- static checks ---------------------------------------------------------------------------------


def test_dashboard_is_provisioning_ready() -> None:
    board = dashboard()
    assert board["uid"] == "qcgate-overview"
    assert board["title"]
    assert board["id"] is None, "a provisioned dashboard gets its id from Grafana"
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    references: list[Any] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if "datasource" in node:
                references.append(node["datasource"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(board["panels"])
    collect([v for v in board["templating"]["list"] if v["name"] != "datasource"])
    assert references, "panels name their datasource"
    assert all(ref == {"type": "prometheus", "uid": "${datasource}"} for ref in references), (
        "a hard-coded datasource breaks the import into another Grafana"
    )
    panels = dashboard_panels()
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
    titles = {panel["title"] for panel in panels}
    assert {
        "Ingest rate",
        "Refusals by reason",
        "Queue depth",
        "Receive to result",
        "Assessment time",
        "Flags over time",
        "Quality by station",
        "Retries and dead letters",
        "Spool free",
    } <= titles


def test_dashboard_and_rules_use_only_metrics_qcgate_exposes(tmp_path: Path) -> None:
    exposed = exposed_metrics(tmp_path / "data")
    assert {"qcgate_queue_depth", "qcgate_spool_free_bytes", "qcgate_series_quality_bucket"} <= exposed
    for expression in [*dashboard_expressions(), *(rule["expr"] for rule in rules())]:
        used = set(METRIC_NAME.findall(expression))
        assert used or re.search(r"\bup\b", expression), f"no metric in {expression!r}"
        assert used <= exposed, f"{sorted(used - exposed)} in {expression!r} are not exposed by qcgate"
    expanded = [expand(expression) for expression in dashboard_expressions()]
    assert not any("$" in expression for expression in expanded)
    shown = set().union(*(METRIC_NAME.findall(expression) for expression in dashboard_expressions()))
    missing = ISSUE_13_PANELS - shown
    assert not missing, f"the dashboard shows nothing of {sorted(missing)}"


def test_every_alert_fires_and_stays_silent_in_the_rule_tests() -> None:
    alerts = {rule["alert"] for rule in rules()}
    assert {
        "QcgateDeadLetters",
        "QcgateQueueBacklog",
        "QcgateQueueNotDraining",
        "QcgateWorkerDown",
        "QcgateSpoolDiskLow",
        "QcgateReceiverRefusingInstances",
    } <= alerts
    for rule in rules():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), rule["alert"]
        assert f"docs/monitoring.md#{rule['alert'].lower()}:" in rule["annotations"]["runbook"], rule["alert"]
    cases = [
        case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test["alert_rule_test"]
    ]
    fired = {case["alertname"] for case in cases if case["exp_alerts"]}
    silent = {case["alertname"] for case in cases if not case["exp_alerts"]}
    assert fired == alerts, f"never driven to firing: {sorted(alerts - fired)}"
    assert silent == alerts, f"no case where it stays silent: {sorted(alerts - silent)}"


def test_station_label_is_one_of_the_configured_stations_or_other(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QCGATE_METRIC_STATIONS", f"{STATION}, MR-NORTH")
    settings = get_settings()
    assert settings.metric_stations == [STATION, "MR-NORTH"]
    assert station_label(settings, STATION) == STATION
    assert station_label(settings, OTHER_CONFIGURED) == OTHER_STATION
    assert station_label(settings, "") == OTHER_STATION
    assert station_label(settings, "mr-east") == OTHER_STATION, "StationName is matched exactly"
    assert station_label(get_settings(metric_stations=[]), STATION) == OTHER_STATION


# --- real promtool ---------------------------------------------------------------------------------


def promtool(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    require_peer(PROMTOOL, Path(PROMTOOL).exists(), "`bash scripts/peers.sh` installs Debian's prometheus")
    return subprocess.run(
        [PROMTOOL, *arguments], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.peers
def test_promtool_checks_the_rules_and_their_unit_tests_pass() -> None:
    checked = promtool("check", "rules", RULES.name, cwd=RULES.parent)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout
    tested = promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@pytest.mark.peers
def test_the_rule_tests_catch_a_wrong_threshold(tmp_path: Path) -> None:
    """The unit tests bite: a backlog threshold that can never be reached fails them."""
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    text = RULES.read_text()
    assert text.count("max(qcgate_queue_depth) > 50") == 1
    (tmp_path / RULES.name).write_text(
        text.replace("max(qcgate_queue_depth) > 50", "max(qcgate_queue_depth) > 5000")
    )
    tested = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert tested.returncode != 0
    assert "alertname: QcgateQueueBacklog" in tested.stdout + tested.stderr


# --- a real Prometheus scraping a real qcgate --------------------------------------------------------


class PrometheusServer(PeerProcess):
    """A ``prometheus`` of its own: temporary config and data dir, a free loopback port, scraping
    ``targets`` every second and evaluating ``rule_files`` every second."""

    def __init__(self, directory: Path, targets: list[str], rule_files: list[Path]) -> None:
        self.directory, self.targets, self.rule_files = directory, targets, rule_files
        self.port = free_port()
        self.process = None

    @property
    def log_path(self) -> Path:
        return self.directory / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        require_peer(
            PROMETHEUS, Path(PROMETHEUS).exists(), "`bash scripts/peers.sh` installs Debian's prometheus"
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(path) for path in self.rule_files],
                    "scrape_configs": [{"job_name": "qcgate", "static_configs": [{"targets": self.targets}]}],
                }
            )
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"prometheus not ready in 30 s:\n{self.log_text()}")

    def api(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expression: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=expression)["result"])

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} within {timeout} s; prometheus log:\n{self.log_text()[-3000:]}")
            time.sleep(0.5)


@pytest.fixture
def prometheus_for(tmp_path: Path) -> Iterator[Callable[[QCGate], PrometheusServer]]:
    """Start a Prometheus scraping a qcgate's /metrics with the shipped rules; stopped after the test."""
    started: list[PrometheusServer] = []

    def start(gate: QCGate) -> PrometheusServer:
        server = PrometheusServer(tmp_path / "prometheus", [f"127.0.0.1:{gate.http_port}"], [RULES])
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def station_series(directory: Path, station: str, noise: float) -> tuple[str, list[Path]]:
    """A small phantom series whose StationName is ``station``; (SeriesInstanceUID, files)."""
    datasets = mr_series_datasets(noisy_phantom((8, 64, 64), noise, 3), series_description="T1 MPRAGE")
    for dataset in datasets:
        dataset.StationName = station
    return str(datasets[0].SeriesInstanceUID), write_series(datasets, directory)


def send_instance_without_pixels(port: int) -> int:
    """A C-STORE the receiver must refuse (MR image storage without Pixel Data); its status."""
    dataset = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    dataset.SOPInstanceUID = generate_uid()
    del dataset.PixelData
    ae = AE(ae_title="REFUSED")
    ae.add_requested_context(MRImageStorage, dataset.file_meta.TransferSyntaxUID)
    association = ae.associate("127.0.0.1", port, ae_title="QCGATE")
    assert association.is_established
    try:
        return int(association.send_c_store(dataset).Status)
    finally:
        association.release()


def open_connections_past_the_limit(gate: QCGate, limit: int) -> None:
    """Hold ``limit`` + 1 silent connections until the receiver has refused one (the per-address limit)."""
    held = [socket.create_connection(("127.0.0.1", gate.dicom_port), timeout=5) for _ in range(limit + 1)]
    try:
        deadline = time.monotonic() + 10
        while metric(gate, "qcgate_connections_refused_total", reason="per_address_limit") < 1:
            assert time.monotonic() < deadline, "no connection past the per-address limit was refused"
            time.sleep(0.2)
    finally:
        for connection in held:
            connection.close()


def scraped_labels(metrics_text: str) -> dict[str, set[str]]:
    """Sample name -> label names, from qcgate's exposition text."""
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


def has_value(sample: dict[str, Any]) -> bool:
    return not math.isnan(float(sample["value"][1]))


@pytest.mark.peers
@pytest.mark.slow
def test_every_dashboard_expression_returns_data_from_a_real_prometheus(
    start_qcgate: Callable[..., QCGate],
    prometheus_for: Callable[[QCGate], PrometheusServer],
    webhook_receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    limit = 2
    gate = start_with(
        start_qcgate,
        tmp_path / "config",
        metric_stations=[STATION],
        thresholds=SPLIT_THRESHOLDS,
        max_associations_per_address=limit,
        webhooks={
            "board": {"url": webhook_receiver.url, "secret": webhook_receiver.secret},
            "nobody": {"url": f"http://127.0.0.1:{free_port()}/hook", "secret": "n" * 32, "timeout_s": 1.0},
        },
        routing_rules=[{"name": "everyone", "webhooks": ["board", "nobody"]}],
    )
    prometheus = prometheus_for(gate)
    prometheus.wait_until(lambda: bool(prometheus.query('up{job="qcgate"} == 1')), "qcgate scraped")

    # Two series per station, each seen by Prometheus before the next: a labelled counter appears at 1,
    # so a rate by station needs a second step to be more than zero.
    flags: set[tuple[str, str]] = set()  # (station label, flag) of every series sent
    sent_series = [(STATION, 0.02), (OTHER_CONFIGURED, 0.2)] * 2
    for number, (station, noise) in enumerate(sent_series, start=1):
        uid, files = station_series(tmp_path / f"series-{number}", station, noise)
        sent = storescu(gate.dicom_port, files, calling_ae="MRSCANNER1")
        assert sent.returncode == 0, sent.stderr
        label = station if station == STATION else OTHER_STATION
        flags.add((label, gate.wait_for_series(uid)["flag"]))
        jobs = {
            job["target"]: job["state"] for job in wait_for_deliveries(gate, uid, 2, ("delivered", "dead"))
        }
        assert jobs == {"board": "delivered", "nobody": "dead"}
        prometheus.wait_until(
            lambda n=number: prometheus.query(f"sum(qcgate_delivery_dead_letters_total) == {n}") != [],
            f"series {number} and its dead letter scraped",
        )
    assert send_instance_without_pixels(gate.dicom_port) == MissingPixelData.status
    open_connections_past_the_limit(gate, limit)

    expressions = sorted({expand(expression) for expression in dashboard_expressions()})
    empty: list[str] = []

    def all_answer() -> bool:
        empty[:] = [e for e in expressions if not any(map(has_value, prometheus.query(e)))]
        return not empty

    try:
        prometheus.wait_until(all_answer, "every dashboard expression answers", timeout=45)
    except TimeoutError as timeout:
        raise AssertionError(f"no data for {empty}") from timeout

    by_station = prometheus.query("sum by (station, flag) (qcgate_series_assessed_total)")
    assert {(s["metric"]["station"], s["metric"]["flag"]) for s in by_station} == flags, (
        f"{OTHER_CONFIGURED} is not configured and must count as {OTHER_STATION}"
    )
    assert prometheus.query("sum(qcgate_instances_rejected_total)")[0]["value"][1] == "1"

    metrics_text = gate.get("/metrics").text
    labels = scraped_labels(metrics_text)
    qcgate_names = {name for name in labels if name.startswith("qcgate_")}
    assert qcgate_names <= exposed_metrics(tmp_path / "derived"), "the static check's list is incomplete"
    for expression in [*expressions, *(rule["expr"] for rule in rules())]:
        used = METRIC_NAME.findall(expression)
        available = {"le"}.union(*(labels[name] for name in used))
        for grouping in GROUPING.findall(expression):
            grouped = {label.strip() for label in grouping.split(",") if label.strip()}
            assert grouped <= available, f"{expression}: no label {sorted(grouped - available)}"

    names = {rule["alert"] for rule in rules()}

    def rules_healthy() -> bool:
        loaded = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
        return {rule["name"] for rule in loaded} == names and all(rule["health"] == "ok" for rule in loaded)

    prometheus.wait_until(rules_healthy, "the rules loaded and evaluated healthy")

    def dead_letter_alert_fires() -> bool:
        return any(
            alert["labels"]["alertname"] == "QcgateDeadLetters"
            and alert["labels"].get("target") == "nobody"
            and alert["state"] == "firing"
            for alert in prometheus.api("alerts")["alerts"]
        )

    prometheus.wait_until(dead_letter_alert_fires, "QcgateDeadLetters firing for the dead webhook")
    firing = {alert["labels"]["alertname"] for alert in prometheus.api("alerts")["alerts"]}
    assert firing == {"QcgateDeadLetters"}, "only the dead letter is wrong with this installation"
