"""Settings of results out: DICOM destinations, webhooks and routing rules (fields of ``Settings``).

Rules are evaluated in order and **every** matching rule contributes its actions (a rule with
``stop: true`` ends the evaluation when it matches); an action named twice for the same target is
done once. See ``docs/delivery.md`` for why all-matches and for examples.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, model_validator

from qcgate.core.outcomes import Flag

SENDER = "@sender"  # target meaning: the destination whose AE title is the series' calling AE
TargetName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
DicomTarget = Annotated[str, Field(pattern=r"^(@sender|[A-Za-z0-9][A-Za-z0-9_.-]{0,63})$")]


class StrictModel(BaseModel):
    """A settings part that refuses unknown keys (a typo is an error, not a silent default) and is frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Tls(StrictModel):
    """DICOM TLS (BCP 195): trust ``ca_file``; ``cert_file``/``key_file`` when the peer wants a client."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    check_hostname: bool = True

    @model_validator(mode="after")
    def _pair(self) -> Tls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class Destination(StrictModel):
    """A DICOM peer (PACS, archive, review workstation, scanner) that qcgate sends to as an SCU."""

    ae_title: str = Field(min_length=1, max_length=16)
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    tls: Tls | None = None


class Webhook(StrictModel):
    """An HTTP endpoint that receives the series result as JSON, signed with HMAC-SHA256."""

    url: AnyHttpUrl
    secret: SecretStr = Field(min_length=16, description="Shared HMAC key; never logged.")
    timeout_s: float = Field(10.0, gt=0)


class MetricCondition(StrictModel):
    """True when the metric exists and its series value is ``> above`` and ``< below`` (each optional)."""

    above: float | None = None
    below: float | None = None

    def holds(self, value: float | None) -> bool:
        if value is None or value != value:  # missing or NaN never matches
            return False
        return (self.above is None or value > self.above) and (self.below is None or value < self.below)


class RuleMatch(StrictModel):
    """Conditions that must all hold; an omitted condition holds for every series.

    Lists match any of their values exactly; patterns are Python regular expressions searched
    anywhere in the attribute (anchor with ``^...$``).
    """

    flag: list[Flag] | None = None
    modality: list[str] | None = None
    calling_ae: list[str] | None = None
    station_name: re.Pattern[str] | None = None
    series_description: re.Pattern[str] | None = None
    metrics: dict[str, MetricCondition] = Field(default_factory=dict)


class RoutingRule(StrictModel):
    """When ``match`` holds, send the SR/KOS, forward the series and call webhooks, by target name."""

    name: TargetName
    match: RuleMatch = Field(default_factory=RuleMatch)
    send_sr: list[DicomTarget] = Field(default_factory=list)
    send_kos: list[DicomTarget] = Field(default_factory=list)
    forward: list[DicomTarget] = Field(default_factory=list)
    webhooks: list[TargetName] = Field(default_factory=list)
    stop: bool = Field(False, description="Evaluate no later rule when this one matches.")


def check_rule_targets(
    rules: list[RoutingRule], destinations: dict[str, Destination], webhooks: dict[str, Webhook]
) -> None:
    """Every target a rule names must be configured (``@sender`` is resolved per series)."""
    for name in destinations:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
            raise ValueError(f"destination name {name!r} must be letters, digits, '_', '.', '-'")
    for rule in rules:
        for target in (*rule.send_sr, *rule.send_kos, *rule.forward):
            if target != SENDER and target not in destinations:
                raise ValueError(f"rule {rule.name!r} names destination {target!r}, which is not configured")
        for target in rule.webhooks:
            if target not in webhooks:
                raise ValueError(f"rule {rule.name!r} names webhook {target!r}, which is not configured")
    names = [rule.name for rule in rules]
    if len(names) != len(set(names)):
        raise ValueError("routing rule names must be unique")
