"""The one typed settings object. Precedence: CLI flags > ``QCGATE_*`` environment > YAML file > defaults.

The YAML file is named by ``QCGATE_CONFIG`` so that every process that ``qcgate serve`` starts
(the worker in particular) reads the same configuration without re-parsing the command line.
"""

from __future__ import annotations

import enum
import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from qcgate.core.delivery_settings import Destination, RoutingRule, StrictModel, Webhook, check_rule_targets

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"


class Threshold(BaseModel):
    """Warn/fail limits of one metric, compared in the metric's own direction.

    On ``scale: value`` (the default), for a higher-is-better metric a value below ``warn`` warns and
    below ``fail`` fails; for a lower-is-better metric above. On ``scale: quality`` the limits apply
    to the calibrated 0-100 quality (higher is better), which only learned metrics have: their raw
    scores mean nothing to a reader. ``source`` records where the numbers came from.
    """

    warn: float | None = None
    fail: float | None = None
    scale: Literal["value", "quality"] = "value"
    source: str = ""


class SeriesFilter(BaseModel):
    """Which instances the verdict judges: the others make a series ``not_assessable``, with the reason.

    ``exclude_image_types`` are ImageType values (the third and later: ADC, FA, phase, MIP...),
    ``exclude_descriptions`` and ``include_descriptions`` regular expressions searched in the
    SeriesDescription (case-insensitive; an include match wins), ``max_b_value`` the highest
    diffusion b-value (s/mm2) still judged.
    """

    exclude_image_types: list[str] = Field(
        default_factory=lambda: [
            "ADC",
            "EADC",
            "FA",
            "TRACEW",
            "P",
            "PHASE",
            "MIP",
            "MNIP",
            "SUB",
            "SUBTRACTION",
            "LOCALIZER",
            "T1 MAP",
            "T2 MAP",
            "T2* MAP",
        ]
    )
    exclude_descriptions: list[str] = Field(
        default_factory=lambda: [
            r"locali[sz]er",
            r"\bscout\b",
            r"\bsurvey\b",
            r"\b3[- ]?plane\b",
            r"\bADC\b",
            r"\bFA\b",
            r"\bMIP\b",
            r"subtraction",
            r"spectroscop",
            r"\bSVS\b",
            r"\bCSI\b",
        ]
    )
    include_descriptions: list[str] = Field(default_factory=list)
    max_b_value: float = Field(100.0, ge=0)


class VerdictLimits(BaseModel):
    """Where the series verdict turns into a flag: the series ``quality`` (0-100, higher is better)
    and the ``severity`` of its worst finding (0-100, higher is worse).

    A series warns when its quality is below ``quality_warn`` or a finding reaches ``severity_warn``,
    and fails below ``quality_fail`` or at ``severity_fail``. The defaults are the shipped verdict
    model's ``suggested_limits``, derived by its training on synthetic validation copies, never on the
    real evaluation images (a test keeps them equal): the warn limits pass at least 97 % of clean and
    mild copies (a margin over the 95 % goal for what real scanners add), the fail limits fail no copy
    damaged at most moderately (docs/verdict.md). A new model brings new defaults.
    """

    quality_warn: float = Field(67.0, ge=0, le=100)
    quality_fail: float = Field(47.0, ge=0, le=100)
    severity_warn: float = Field(40.0, ge=0, le=100)
    severity_fail: float = Field(70.0, ge=0, le=100)

    def warns(self, quality: float, worst_severity: float) -> bool:
        """Whether a verdict of this ``quality`` and worst finding severity warns or fails: the
        rule of the flag, without its reasons, for what counts flags (calibration, benchmarks)."""
        return quality < self.quality_warn or worst_severity >= self.severity_warn

    @model_validator(mode="after")
    def _ordered(self) -> VerdictLimits:
        if self.quality_fail > self.quality_warn or self.severity_fail < self.severity_warn:
            raise ValueError("fail limits must be at least as strict as warn limits")
        return self


class Role(enum.StrEnum):
    """What an API client may do; each role includes the ones before it."""

    READ = "read"  # results: series, flags, metrics, deliveries (no patient data)
    IMAGES = "images"  # also report files and pixels, which carry patient data
    REVIEW = "review"  # also record a person's review of a series (acceptable / non-diagnostic)
    OPERATE = "operate"  # also rescore, retry deliveries, C-ECHO destinations
    ADMIN = "admin"  # everything


ROLE_ORDER = tuple(Role)


class ApiClient(StrictModel):
    """A named API client: its bearer token and its role (the access log names the client)."""

    token: SecretStr = Field(min_length=16, description="Bearer token; never shown or logged.")
    role: Role = Role.READ


class ListenerTls(StrictModel):
    """TLS for a listener: its certificate and key; with ``ca_file`` clients must present a
    certificate that CA signed (mutual TLS, as BCP 195 allows for DICOM)."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None = None


def is_loopback(host: str) -> bool:
    """True for an address (or ``localhost``) that only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Every knob of qcgate; each field is listed in the README's settings table."""

    model_config = SettingsConfigDict(env_prefix="QCGATE_", extra="forbid")

    data_dir: Path = Field(Path("qcgate-data"), description="Spool, SQLite database, broker and metrics.")
    ae_title: str = Field("QCGATE", min_length=1, max_length=16, description="Our AE title.")
    dicom_host: str = Field(
        "127.0.0.1",
        description="Address the DICOM receiver listens on; beyond loopback it needs allowed_calling_aes.",
    )
    dicom_port: int = Field(11112, ge=0, le=65535, description="DICOM port the receiver listens on.")
    http_host: str = Field(
        "127.0.0.1", description="Address the REST API listens on; beyond loopback it needs api_tokens."
    )
    http_port: int = Field(8080, ge=0, le=65535, description="REST API port.")
    allowed_calling_aes: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Calling AE titles allowed to associate; empty allows all."
    )
    dicom_tls: ListenerTls | None = Field(
        None, description="TLS for incoming DICOM (cert_file, key_file, ca_file)."
    )
    http_tls: ListenerTls | None = Field(
        None, description="HTTPS for the API (cert_file, key_file, ca_file)."
    )
    max_associations: int = Field(10, ge=1, description="Simultaneous associations accepted.")
    max_associations_per_address: int = Field(
        4,
        ge=1,
        description="Simultaneous connections from one peer address (behind a proxy or NAT every"
        " scanner is one address: raise it there).",
    )
    association_request_timeout_s: float = Field(
        5.0, gt=0, description="A connection that sends no A-ASSOCIATE-RQ within this is dropped."
    )
    dicom_listen_backlog: int = Field(128, ge=1, description="Connections the kernel queues before accept.")
    accept_other_storage: bool = Field(
        False, description="Accept and keep (never score) non-MR storage SOP classes."
    )
    min_free_disk_mb: int = Field(
        512, ge=0, description="Refuse C-STORE with 0xA700 below this much free space in the spool."
    )
    max_rows: int = Field(4096, ge=1, description="Largest accepted Rows/Columns.")
    max_frames: int = Field(4096, ge=1, description="Largest accepted NumberOfFrames.")
    max_instance_mb: int = Field(1024, ge=1, description="Largest accepted instance (after inflating).")
    max_decoded_mb: int = Field(
        512, ge=1, description="Largest pixel data an instance may decode to, checked before decoding."
    )
    max_series_decoded_mb: int = Field(
        16384, ge=1, description="Largest pixel data a whole series may decode to (what a worker holds)."
    )
    quiet_period_s: float = Field(
        10.0, gt=0, description="Seconds without a new instance before a series is complete."
    )
    sweep_interval_s: float = Field(1.0, gt=0, description="How often the completion sweeper runs.")
    requeue_after_s: float = Field(
        120.0, gt=0, description="Send a series' task again when it stayed queued this long (lost task)."
    )
    scoring_lease_s: float = Field(
        30.0,
        gt=0,
        description="A worker's lease on the series it scores, renewed every third of it while it works;"
        " a lapsed lease (worker killed) re-queues the series.",
    )
    scoring_timeout_s: float = Field(
        900.0, gt=0, description="A worker stops renewing its lease after this long: the scoring timed out."
    )
    max_scoring_attempts: int = Field(
        3, ge=1, description="A revision whose scoring crashed or timed out this often ends failed."
    )
    database_url: SecretStr | None = Field(
        None, description="SQLAlchemy URL (it may hold a password: never shown); default SQLite in data_dir."
    )
    broker_url: SecretStr | None = Field(
        None, description="Celery broker (never shown); default a filesystem broker in data_dir."
    )
    worker_concurrency: int = Field(1, ge=1, description="Celery worker processes started by serve.")
    onnx_providers: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="ONNX Runtime provider of the learned metrics: auto (CUDA where offered, else CPU), cpu,"
        " or cuda (falls back to the CPU with a warning where CUDA is not offered).",
    )
    onnx_fp16: bool = Field(
        False,
        description="On CUDA, load a model's fp16 file where its recorded fp16 error is within its parity"
        " tolerance (off: fp16 parity on a GPU is not measured yet).",
    )
    site_models_dir: Path | None = Field(
        None,
        description="A folder holding a manifest.json of the site's own models (a rank_effnet fine-tuned"
        " on its pairwise judgements: python -m qcgate.export CKPT --name site_rank --out DIR); each is"
        " scored beside the shipped models as its own metric, named site_*, with its own Device UID.",
    )
    gpu_queue_enabled: bool = Field(
        False,
        description="Send assessments to the qcgate.gpu queue, which only `qcgate worker --kind gpu`"
        " consumes; set it on every process that queues series when GPU workers are deployed.",
    )
    gpu_worker_threads: int = Field(
        4, ge=1, description="Series a `qcgate worker --kind gpu` assesses at once (Celery threads pool)."
    )
    gpu_batch_max: int = Field(
        32, ge=1, description="Windows (slices or patches) per inference batch in a gpu worker."
    )
    gpu_batch_wait_ms: float = Field(
        5.0, ge=0, description="How long a gpu worker's batch waits for windows of other series to fill."
    )
    receiver_processes: int = Field(
        1,
        ge=1,
        description="Receiver processes sharing the DICOM port (SO_REUSEPORT); the association limits"
        " apply per process.",
    )
    receiver_runs_sweeper: bool = Field(
        True,
        description="The receiver also runs the completion sweeper (off when `qcgate sweeper` runs apart);"
        " one leader sweeps however many run.",
    )
    migrate_on_start: bool = Field(
        True, description="Upgrade the database at start (off when `qcgate migrate` runs as its own step)."
    )
    status_host: str = Field(
        "127.0.0.1", description="Address of the status endpoint of scp, worker, sweeper."
    )
    status_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Port of /healthz, /readyz and /metrics of scp, worker and sweeper processes; none: off.",
    )
    prometheus_dir: Path | None = Field(
        None,
        description="Metrics files of this machine's or pod's processes (default data_dir/prometheus);"
        " never a shared volume.",
    )
    metric_stations: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="StationNames that get their own `station` label on the assessment metrics;"
        " every other station counts as `other`.",
    )
    metric_protocols: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Protocols (ProtocolName, else SeriesDescription) that get their own `protocol` label on"
        " qcgate_quality_drift; every other protocol counts as `other`.",
    )
    drift_baseline_series: int = Field(
        40,
        ge=5,
        description="A station and protocol's quality baseline: median and MAD of its first this many series"
        " scored by the current models (docs/drift.md).",
    )
    drift_allowance: float = Field(
        0.5, ge=0, description="CUSUM allowance k, in robust standard deviations of the baseline."
    )
    drift_threshold: float = Field(
        8.0, gt=0, description="CUSUM decision limit h: a statistic above it means the quality drifts down."
    )
    api_clients: dict[str, ApiClient] = Field(
        default_factory=dict,
        description="Named API clients: token and role (read, images, review, operate, admin);"
        " see docs/security.md.",
    )
    api_tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Bearer tokens accepted by the API (never shown); empty disables auth, only on loopback.",
    )
    thresholds: dict[str, Threshold] = Field(
        default_factory=dict,
        description="Site limits per metric (none by default: the verdict flags; docs/thresholds.md).",
    )
    verdict_limits: VerdictLimits = Field(
        default_factory=VerdictLimits, description="Quality and finding-severity limits of the flag."
    )
    pinned_limits: dict[str, VerdictLimits] = Field(
        default_factory=dict,
        description="Verdict limits by protocol (ProtocolName, else SeriesDescription; `*`: every"
        " protocol) that win over limits learned from reviews (docs/reviews.md).",
    )
    report_only: bool = Field(
        False,
        description="Verdicts are computed, shown and sent, but routing rules that match on the flag do"
        " not fire (a site watching before flags drive routing).",
    )
    series_filter: SeriesFilter = Field(
        default_factory=SeriesFilter, description="Which series the verdict judges (header rules)."
    )
    verdict_acquired_grid: bool = Field(
        False,
        description="Judge an interpolated series on the grid its header says was acquired"
        " (AcquisitionMatrix, PercentPhaseFieldOfView) rather than the displayed one; off until a verdict"
        " model trained for it ships (docs/verdict.md).",
    )
    log_level: str = Field("INFO", description="Python logging level.")
    sr_enabled: bool = Field(True, description="Issue a DICOM SR (TID 1500) after every assessment.")
    kos_on_fail: bool = Field(
        False, description='Also issue a Key Object Selection "Quality Issue" for failed series.'
    )
    destinations: dict[str, Destination] = Field(
        default_factory=dict, description="DICOM peers by name: ae_title, host, port, optional tls."
    )
    webhooks: dict[str, Webhook] = Field(
        default_factory=dict, description="HTTP endpoints by name: url, secret, timeout_s."
    )
    routing_rules: list[RoutingRule] = Field(
        default_factory=list, description="Ordered rules; every matching rule's actions are done."
    )
    delivery_max_attempts: int = Field(8, ge=1, description="Attempts before a delivery is dead.")
    delivery_retry_base_s: float = Field(
        5.0, gt=0, description="Wait before the first retry; doubles per attempt."
    )
    delivery_retry_max_s: float = Field(600.0, gt=0, description="Longest wait between attempts.")
    delivery_timeout_s: float = Field(
        30.0, gt=0, description="Network timeout of one DICOM step (connect, associate, response)."
    )
    retention_pixels_days: float = Field(
        30.0, gt=0, description="Spooled pixels of a finished series are pruned after this many days."
    )
    retention_results_days: float = Field(
        730.0, gt=0, description="Rows and SR files of a series are deleted after this many days."
    )
    retention_dead_delivery_days: float = Field(
        7.0, gt=0, description="Pixels whose only pending work is a dead delivery are pruned after this."
    )
    spool_free_target_mb: int = Field(
        0, ge=0, description="Prune the oldest finished series' pixels until this much disk is free."
    )
    retention_interval_s: float = Field(3600.0, gt=0, description="How often the sweeper applies retention.")
    delivery_lease_s: float = Field(
        900.0, gt=0, description="A delivery in flight longer than this is presumed lost and retried."
    )

    _split_lists = field_validator(
        "allowed_calling_aes", "api_tokens", "metric_stations", "metric_protocols", mode="before"
    )(_split_csv)

    @model_validator(mode="after")
    def _absolute_data_dir(self) -> Settings:
        self.data_dir = self.data_dir.resolve()
        return self

    @model_validator(mode="after")
    def _open_listeners_are_guarded(self) -> Settings:
        """Closed by default: listening beyond this machine is a choice, and it needs its guards."""
        if not is_loopback(self.dicom_host) and not self.allowed_calling_aes:
            raise ValueError(
                f"dicom_host {self.dicom_host} accepts associations from other machines: set"
                " allowed_calling_aes to the AE titles that may send (QCGATE_ALLOWED_CALLING_AES)"
            )
        if not is_loopback(self.http_host) and not (self.api_tokens or self.api_clients):
            raise ValueError(
                f"http_host {self.http_host} serves the API to other machines: set api_tokens"
                " (QCGATE_API_TOKENS) so that results and reports need a token"
            )
        return self

    @model_validator(mode="after")
    def _shared_port_is_a_fixed_port(self) -> Settings:
        if self.receiver_processes > 1 and self.dicom_port == 0:
            raise ValueError("receiver_processes above 1 share one DICOM port: set dicom_port (not 0)")
        return self

    @model_validator(mode="after")
    def _rules_name_configured_targets(self) -> Settings:
        check_rule_targets(self.routing_rules, self.destinations, self.webhooks)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = os.environ.get("QCGATE_CONFIG")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file:
            if not Path(config_file).is_file():
                raise FileNotFoundError(f"QCGATE_CONFIG names {config_file!r}, which is not a file")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def sr_dir(self) -> Path:
        return self.data_dir / "sr"

    @property
    def image_cache_dir(self) -> Path:
        """PNGs the page rendered, per series and revision; retention deletes a series' with its pixels."""
        return self.data_dir / "cache" / "images"

    @property
    def metrics_dir(self) -> Path:
        """Where this process's Prometheus multiprocess files go: ``prometheus_dir`` or its default."""
        return self.prometheus_dir if self.prometheus_dir is not None else self.data_dir / "prometheus"

    @property
    def effective_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'qcgate.db'}"

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url.get_secret_value() if self.broker_url is not None else "filesystem://"

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def scored_sop_classes(self) -> frozenset[str]:
        return frozenset({MR_IMAGE_STORAGE, ENHANCED_MR_IMAGE_STORAGE})


def get_settings(**overrides: Any) -> Settings:
    """Build settings now (never at import time) so tests and subprocesses each get their own."""
    return Settings(**overrides)
