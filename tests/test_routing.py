"""Routing rules: every condition, all-matches with stop, one action per target, settings validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from qcgate.core.delivery_settings import RoutingRule
from qcgate.core.delivery_states import DeliveryAction
from qcgate.core.outcomes import Flag
from qcgate.core.settings import get_settings
from qcgate.delivery.rules import PlannedAction, SeriesFacts, matches, route

DESTINATIONS = {
    name: {"ae_title": name, "host": "127.0.0.1", "port": 104} for name in ("ARCHIVE", "REVIEW", "LOWSNR")
}
WEBHOOKS = {"ops": {"url": "http://127.0.0.1:9/hook", "secret": "s" * 32}}

T1_FAIL = SeriesFacts(
    flag=Flag.FAIL,
    metrics={"snrd": 2.5, "cnr": 0.6},
    modality="MR",
    station_name="MRC40123",
    series_description="t1_mprage_sag",
    calling_ae="MR1",
)


def rule(**fields: object) -> RoutingRule:
    return RoutingRule.model_validate({"name": "r", **fields})


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({}, True),
        ({"flag": ["fail"]}, True),
        ({"flag": ["pass", "warn"]}, False),
        ({"modality": ["MR"]}, True),
        ({"modality": ["CT"]}, False),
        ({"calling_ae": ["MR1", "MR2"]}, True),
        ({"calling_ae": ["MR2"]}, False),
        ({"station_name": "^MRC4"}, True),
        ({"station_name": "^MRC5"}, False),
        ({"series_description": "(?i)MPRAGE"}, True),
        ({"series_description": "^t2"}, False),
        ({"metrics": {"snrd": {"below": 3.0}}}, True),
        ({"metrics": {"snrd": {"above": 3.0}}}, False),
        ({"metrics": {"snrd": {"above": 2.0, "below": 3.0}}}, True),
        ({"metrics": {"msm": {"below": 100}}}, False),  # a metric the series lacks never matches
        ({"flag": ["fail"], "metrics": {"cnr": {"below": 0.5}}}, False),  # all conditions must hold
    ],
)
def test_each_condition(match: dict[str, object], expected: bool) -> None:
    assert matches(rule(match=match).match, T1_FAIL) is expected


def test_nan_metric_never_matches() -> None:
    facts = SeriesFacts(flag=Flag.PASS, metrics={"snrd": float("nan")})
    assert not matches(rule(match={"metrics": {"snrd": {"below": 1e9}}}).match, facts)
    assert not matches(rule(match={"metrics": {"snrd": {"above": -1e9}}}).match, facts)


def test_all_matching_rules_contribute_in_order_and_each_target_once() -> None:
    rules = [
        rule(name="archive-all", send_sr=["ARCHIVE"], forward=["ARCHIVE"]),
        rule(name="fail-review", match={"flag": ["fail"]}, send_sr=["REVIEW", "ARCHIVE"], webhooks=["ops"]),
        rule(name="pass-only", match={"flag": ["pass"]}, send_sr=["LOWSNR"]),
    ]
    assert route(rules, T1_FAIL) == [
        PlannedAction(DeliveryAction.SEND_SR, "ARCHIVE", "archive-all"),
        PlannedAction(DeliveryAction.FORWARD, "ARCHIVE", "archive-all"),
        PlannedAction(DeliveryAction.SEND_SR, "REVIEW", "fail-review"),
        PlannedAction(DeliveryAction.WEBHOOK, "ops", "fail-review"),
    ]


def test_stop_ends_evaluation_only_when_its_rule_matches() -> None:
    rules = [
        rule(name="pass-stop", match={"flag": ["pass"]}, send_sr=["ARCHIVE"], stop=True),
        rule(name="fail-stop", match={"flag": ["fail"]}, send_sr=["REVIEW"], stop=True),
        rule(name="never-after-a-stop", send_kos=["REVIEW"]),
    ]
    assert [p.rule for p in route(rules, T1_FAIL)] == ["fail-stop"]
    warned = SeriesFacts(flag=Flag.WARN)
    assert [p.rule for p in route(rules, warned)] == ["never-after-a-stop"]


def test_not_assessable_series_has_no_flag_and_matches_only_flagless_rules() -> None:
    rules = [
        rule(name="flagged", match={"flag": ["fail"]}, webhooks=["ops"]),
        rule(name="any", webhooks=["ops"]),
    ]
    assert route(rules, SeriesFacts(flag=None)) == [PlannedAction(DeliveryAction.WEBHOOK, "ops", "any")]


def test_settings_accept_rules_naming_configured_targets_and_sender() -> None:
    settings = get_settings(
        destinations=DESTINATIONS,
        webhooks=WEBHOOKS,
        routing_rules=[{"name": "back", "send_sr": ["@sender", "ARCHIVE"], "webhooks": ["ops"]}],
    )
    assert settings.routing_rules[0].send_sr == ["@sender", "ARCHIVE"]
    assert "s" * 32 not in repr(settings.webhooks)  # the secret never shows


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([{"name": "a", "send_sr": ["NOWHERE"]}], "names destination 'NOWHERE'"),
        ([{"name": "a", "webhooks": ["pager"]}], "names webhook 'pager'"),
        ([{"name": "a"}, {"name": "a"}], "unique"),
        ([{"name": "a", "match": {"series_description": "("}}], "series_description"),
        ([{"name": "a", "match": {"flag": ["sideways"]}}], "flag"),
        ([{"name": "a", "match": {"metrics": {"snrd": {"under": 3}}}}], "under"),
        ([{"name": "a", "forward": ["@anyone"]}], "forward"),
    ],
)
def test_settings_refuse_bad_rules(rules: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        get_settings(destinations=DESTINATIONS, webhooks=WEBHOOKS, routing_rules=rules)


def test_settings_refuse_bad_destinations_and_webhooks() -> None:
    with pytest.raises(ValidationError, match="ae_title"):
        get_settings(destinations={"X": {"ae_title": "A" * 17, "host": "h", "port": 104}})
    with pytest.raises(ValidationError, match="cert_file and key_file"):
        get_settings(
            destinations={"X": {"ae_title": "X", "host": "h", "port": 104, "tls": {"cert_file": "c"}}}
        )
    with pytest.raises(ValidationError, match="secret"):
        get_settings(webhooks={"ops": {"url": "http://h/x", "secret": "short"}})
    with pytest.raises(ValidationError, match="url"):
        get_settings(webhooks={"ops": {"url": "ftp://h/x", "secret": "s" * 32}})
    with pytest.raises(ValidationError, match="destination name"):
        get_settings(destinations={"a b": {"ae_title": "X", "host": "h", "port": 104}})


def test_destinations_and_rules_come_from_json_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "QCGATE_DESTINATIONS", '{"ARCHIVE": {"ae_title": "PACS", "host": "pacs", "port": 11112}}'
    )
    monkeypatch.setenv("QCGATE_ROUTING_RULES", '[{"name": "all", "send_sr": ["ARCHIVE"]}]')
    settings = get_settings()
    assert settings.destinations["ARCHIVE"].port == 11112
    assert settings.routing_rules[0].send_sr == ["ARCHIVE"]
