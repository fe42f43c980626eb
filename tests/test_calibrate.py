"""Site limits learned from reviews: the fit on synthetic reviews whose right limit is known, the
proposal stored and applied (REST and ``qcgate calibrate``), the worker flagging by the applied limit
(a setting pinned above it, a new verdict model invalidating it), and report-only routing."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from qcgate.assessment.calibration import (
    GLOBAL,
    Performance,
    ReviewedCase,
    fit_limits,
    isotonic_blocks,
    performance,
    propose_limits,
)
from qcgate.assessment.site_limits import chosen_limits, make_proposal
from qcgate.assessment.verdict import model_identity, shipped_verdict_model
from qcgate.cli.main import main
from qcgate.core.delivery_settings import RoutingRule
from qcgate.core.delivery_states import DeliveryAction
from qcgate.core.outcomes import Flag
from qcgate.core.settings import VerdictLimits, get_settings
from qcgate.delivery.rules import SeriesFacts, route
from qcgate.metrics.classic import ClassicMetrics
from qcgate.store.database import create_database_engine, session_factory, upgrade_database
from qcgate.store.repository import current_assessment
from qcgate.store.reviews import ReviewVerdict, apply_proposal, record_review
from qcgate.store.tables import Series, SiteLimit
from qcgate.worker.assess import WorkerContext, assess_queued_series
from tests.test_reviews import (
    ROOT,
    SPOOLED_UID,
    T0,
    Api,
    add_scored,
    api_factory,
    bearer,
    spool_series,
    verdict_document,
)

BASE = VerdictLimits()  # the shipped defaults: the limits in force where a site set none


@pytest.fixture
def make_api(seeded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Api]]:
    yield from api_factory(seeded, tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty store (copied per test by ``make_api``)."""
    settings = get_settings(data_dir=tmp_path_factory.mktemp("calibrate"))
    upgrade_database(settings.effective_database_url)
    return settings.data_dir


def reviews_with_limit(
    limit: float, count: int, *, protocol: str = "t1", flips: float = 0.1, seed: int = 0
) -> list[ReviewedCase]:
    """Series of uniform quality whose truth is ``quality < limit``; readers flip ``flips`` of them."""
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        quality = rng.uniform(0, 100)
        truth = quality < limit
        said = (not truth) if rng.random() < flips else truth
        cases.append(ReviewedCase(protocol, round(quality, 1), 0.0, said))
    return cases


def test_isotonic_blocks_are_monotone_and_keep_the_mean() -> None:
    cases = reviews_with_limit(50, 300, flips=0.2)
    blocks = isotonic_blocks([c.quality for c in cases], [c.non_diagnostic for c in cases], increasing=False)
    rates = [p for _, _, p in blocks]
    assert rates == sorted(rates, reverse=True)
    assert len(blocks) < 40, "reader noise is pooled, not followed"
    assert blocks[0][2] > 0.7
    assert blocks[-1][2] < 0.3
    # A step fit in increasing x: the blocks tile the data in order.
    assert all(a[1] < b[0] for a, b in zip(blocks, blocks[1:], strict=False))
    rising = isotonic_blocks([1.0, 2.0, 3.0, 4.0], [True, False, True, True], increasing=True)
    assert [p for _, _, p in rising] == [0.5, 1.0]


@pytest.mark.parametrize("truth", [30.0, 55.0, 80.0])
def test_the_fit_finds_the_known_limit_through_reader_noise(truth: float) -> None:
    cases = reviews_with_limit(truth, 800, flips=0.15, seed=int(truth))
    fitted = fit_limits(cases, BASE)
    assert fitted.quality_warn == pytest.approx(truth, abs=4.0)
    assert fitted.quality_fail <= fitted.quality_warn
    assert fitted.severity_warn == BASE.severity_warn, "no severity evidence: the limit stays"
    before, after = performance(cases, BASE), performance(cases, fitted)
    assert (after.sensitivity or 0) + (after.specificity or 0) >= (before.sensitivity or 0) + (
        before.specificity or 0
    )


def test_severity_limit_is_fitted_where_findings_decide() -> None:
    rng = random.Random(5)
    cases = []
    for _ in range(300):
        severity = rng.uniform(0, 100)
        cases.append(ReviewedCase("t1", 90.0, round(severity, 1), severity >= 60.0))
    fitted = fit_limits(cases, BASE)
    assert fitted.severity_warn == pytest.approx(60.0, abs=2.0)
    assert fitted.severity_fail >= fitted.severity_warn
    assert fitted.quality_warn == BASE.quality_warn


def test_a_limit_between_neighbouring_values_lands_on_the_right_side() -> None:
    cases = [ReviewedCase("t1", 50.0, 0.0, True)] * 10 + [ReviewedCase("t1", 50.1, 0.0, False)] * 10
    fitted = fit_limits(cases, BASE)
    assert fitted.quality_warn == 50.1
    assert performance(cases, fitted) == Performance(1.0, 1.0, 10, 10)


def test_uninformative_reviews_change_nothing() -> None:
    cases = [ReviewedCase("t1", q, 0.0, q < 65.0) for q in (10.0, 20.0, 80.0, 90.0)]
    assert fit_limits(cases, BASE) == BASE


def test_protocols_are_fitted_apart_and_a_short_one_takes_the_global_fit() -> None:
    cases = (
        reviews_with_limit(45, 200, protocol="t1", seed=1)
        + reviews_with_limit(80, 200, protocol="flair", seed=2)
        + reviews_with_limit(60, 8, protocol="dwi", seed=3)
    )
    # Limits in force well away from both protocols' truths: a fit a few points from them is
    # rightly not proposed (not significant on 200 reviews), and the shipped defaults move per model.
    base = VerdictLimits(quality_warn=65.0, quality_fail=40.0)
    proposals = {p.protocol: p for p in propose_limits(cases, lambda _: base, min_count=30)}
    assert set(proposals) == {GLOBAL, "t1", "flair", "dwi"}
    assert proposals["t1"].fitted
    assert proposals["t1"].limits.quality_warn == pytest.approx(45, abs=5)
    assert proposals["flair"].limits.quality_warn == pytest.approx(80, abs=5)
    assert not proposals["dwi"].fitted
    assert proposals["dwi"].limits == proposals[GLOBAL].limits
    assert proposals["dwi"].reviews == 8
    too_few = propose_limits(cases[:5], lambda _: base, min_count=30)
    assert all(p.limits == base and not p.fitted for p in too_few), "nothing fits: the limits in force stay"


# the store, REST and the command line


def seed_reviews(api: Api, truth: float, count: int, protocol: str = "t1_mprage") -> None:
    """``count`` scored series of ``protocol`` with reviews that are right about ``quality < truth``."""
    rng = random.Random(7)
    with api.sessions.begin() as session:
        for n in range(count):
            quality = round(rng.uniform(0, 100), 1)
            flag = Flag.WARN if quality < BASE.quality_warn else Flag.PASS
            uid = f"{ROOT}.30.{n}"
            at = T0 + timedelta(minutes=n)
            add_scored(
                session, uid, at, verdict_document(flag, quality), station="MR-EAST", protocol=protocol
            )
    for n in range(count):
        series = api.client.get(f"/api/v1/series/{ROOT}.30.{n}", headers=bearer("read")).json()
        verdict = "non_diagnostic" if series["quality"] < truth else "acceptable"
        answer = api.client.post(
            f"/api/v1/series/{ROOT}.30.{n}/reviews", json={"verdict": verdict}, headers=bearer("review")
        )
        assert answer.status_code == 201


def test_limits_are_proposed_applied_and_listed_over_rest(make_api: Callable[..., Api]) -> None:
    api = make_api()
    seed_reviews(api, truth=50.0, count=60)
    assert api.client.post("/api/v1/limits/proposal", headers=bearer("operate")).status_code == 403
    proposed = api.client.post("/api/v1/limits/proposal?min_count=20", headers=bearer("admin"))
    assert proposed.status_code == 201, proposed.text
    rows = {row["protocol"]: row for row in proposed.json()["rows"]}
    mine = rows["t1_mprage"]
    assert mine["fitted"]
    assert mine["limits"]["quality_warn"] == pytest.approx(50.0, abs=3.0)
    assert mine["reviews"] == 60
    assert mine["proposed"]["sensitivity"] == 1.0
    assert mine["proposed"]["specificity"] == 1.0
    assert mine["current"]["specificity"] < 1.0, "65 flags the series people found acceptable at 50-65"
    assert mine["current_limits"] == BASE.model_dump()
    assert not mine["applied"]
    limits = api.client.get("/api/v1/limits", headers=bearer("read")).json()
    assert limits["applied"] == []
    assert limits["proposal"][0]["proposal"] == proposed.json()["proposal"]
    assert limits["model"] == model_identity(shipped_verdict_model())
    number = proposed.json()["proposal"]
    assert api.client.post(f"/api/v1/limits/{number}/apply", headers=bearer("review")).status_code == 403
    assert api.client.post(f"/api/v1/limits/{number + 5}/apply", headers=bearer("admin")).status_code == 404
    applied = api.client.post(f"/api/v1/limits/{number}/apply", headers=bearer("admin"))
    assert applied.status_code == 200
    assert all(row["applied"] and row["applied_by"] == "admin-desk" for row in applied.json()["rows"])
    shown = api.client.get("/api/v1/limits", headers=bearer("read")).json()["applied"]
    assert {row["protocol"] for row in shown} == {"", "t1_mprage"}


def test_qcgate_calibrate_proposes_and_applies(
    make_api: Callable[..., Api], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api = make_api()
    seed_reviews(api, truth=40.0, count=50)
    monkeypatch.setenv("QCGATE_DATA_DIR", str(api.settings.data_dir))
    assert main(["calibrate", "--min-count", "20", "--json"]) == 0
    proposal = json.loads(capsys.readouterr().out)
    assert not proposal["applied"]
    row = next(r for r in proposal["rows"] if r["protocol"] == "t1_mprage")
    assert row["limits"]["quality_warn"] == pytest.approx(40.0, abs=3.0)
    assert main(["calibrate", "--min-count", "20"]) == 0
    table = capsys.readouterr().out
    assert "limits proposal 2, proposed (not applied)" in table
    assert "t1_mprage\t50\t" in table
    assert main(["calibrate", "--apply", str(proposal["proposal"])]) == 0
    assert "applied" in capsys.readouterr().out
    assert main(["calibrate", "--apply", "99"]) == 2
    with api.sessions() as session:
        chosen = chosen_limits(session, api.settings, "t1_mprage", model_identity(shipped_verdict_model()))
    assert chosen.source == f"site_limits/{proposal['proposal']}"
    assert chosen.limits.quality_warn == row["limits"]["quality_warn"]


def test_the_worker_flags_by_the_applied_limit_unless_pinned_or_the_model_changed(
    make_api: Callable[..., Api],
) -> None:
    api = make_api()
    model = model_identity(shipped_verdict_model())
    # A proposal without reviews (its one row the global limits), applied, then made strict: a quality
    # below 100 warns. t1_mprage has no row of its own, so the global row is its limit.
    with api.sessions.begin() as session:
        number, _ = make_proposal(session, api.settings, model, min_count=1000, at=T0)
        apply_proposal(session, number, by="test", at=T0)
        row = session.query(SiteLimit).filter_by(proposal=number, protocol="").one()
        row.quality_warn, row.quality_fail = 100.0, 0.0
    series_id = spool_series(api.settings, api.sessions)
    assessed = assess_queued_series(WorkerContext(api.settings, api.sessions, [ClassicMetrics()]), series_id)
    assert assessed.outcome == "done"
    body = api.client.get(f"/api/v1/series/{SPOOLED_UID}", headers=bearer("read")).json()
    assert body["quality"] < 100.0
    assert body["flag"] == "warn", body["reasons"]
    assert body["provenance"]["verdict"]["limits_source"] == f"site_limits/{number}"
    assert body["provenance"]["verdict"]["limits"]["quality_warn"] == 100.0
    with api.sessions() as session:
        pinned = get_settings(data_dir=api.settings.data_dir, pinned_limits={"t1_mprage": BASE.model_dump()})
        assert chosen_limits(session, pinned, "t1_mprage", model).source == "pinned"
        everywhere = get_settings(data_dir=api.settings.data_dir, pinned_limits={"*": BASE.model_dump()})
        assert chosen_limits(session, everywhere, "flair", model).limits == BASE
        other_model = {"version": "9", "sha256": "0" * 64}
        assert chosen_limits(session, api.settings, "t1_mprage", other_model).source == "settings"


# report-only


def rule(name: str, **match: Any) -> RoutingRule:
    return RoutingRule.model_validate({"name": name, "match": match, "webhooks": [name]})


def test_report_only_keeps_rules_that_do_not_look_at_the_flag() -> None:
    rules = [rule("page-on-fail", flag=["fail"]), rule("everything"), rule("mr", modality=["MR"])]
    facts = SeriesFacts(flag=Flag.FAIL, modality="MR")
    assert [p.rule for p in route(rules, facts)] == ["page-on-fail", "everything", "mr"]
    watched = route(rules, facts, report_only=True)
    assert [p.rule for p in watched] == ["everything", "mr"]
    assert all(p.action == DeliveryAction.WEBHOOK for p in watched)
    stopping = [
        RoutingRule.model_validate({"name": "s", "match": {"flag": ["fail"]}, "stop": True}),
        rule("b"),
    ]
    assert [p.rule for p in route(stopping, facts, report_only=True)] == ["b"], (
        "its stop does not fire either"
    )


def test_report_only_result_says_so_and_routes_nothing_on_the_flag(make_api: Callable[..., Api]) -> None:
    secret = "0123456789abcdef0123"
    hooks = {
        "pager": {"url": "http://127.0.0.1:9/p", "secret": secret},
        "log": {"url": "http://127.0.0.1:9/l", "secret": secret},
    }
    rules = [
        {"name": "page", "match": {"flag": ["pass", "warn", "fail"]}, "webhooks": ["pager"]},
        {"name": "all", "webhooks": ["log"]},
    ]
    api = make_api(report_only=True, webhooks=hooks, routing_rules=rules)
    series_id = spool_series(api.settings, api.sessions)
    assessed = assess_queued_series(WorkerContext(api.settings, api.sessions, [ClassicMetrics()]), series_id)
    assert assessed.outcome == "done"
    body = api.client.get(f"/api/v1/series/{SPOOLED_UID}", headers=bearer("read")).json()
    assert body["flag"] in ("pass", "warn", "fail"), "the verdict is still computed"
    assert body["provenance"]["report_only"] is True
    targets = [
        item["target"]
        for item in api.client.get(f"/api/v1/deliveries?series={SPOOLED_UID}", headers=bearer("read")).json()[
            "items"
        ]
    ]
    assert targets == ["log"]


def test_a_fresh_store_upgrades_through_0007(tmp_path: Path) -> None:
    settings = get_settings(data_dir=tmp_path)
    upgrade_database(settings.effective_database_url)
    engine = create_database_engine(settings.effective_database_url)
    with session_factory(engine)() as session:
        model = model_identity(shipped_verdict_model())
        assert chosen_limits(session, settings, "t1", model).source == "settings"
    engine.dispose()


@pytest.mark.peers
def test_reviews_and_limits_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    """Migration 0007 and the whole round trip (review rows, a proposal, applying it) on PostgreSQL."""
    upgrade_database(postgres_url)
    settings = get_settings(data_dir=tmp_path, database_url=postgres_url)
    engine = create_database_engine(postgres_url)
    sessions = session_factory(engine)
    model = model_identity(shipped_verdict_model())
    try:
        with sessions.begin() as session:
            for n in range(40):
                quality = 2.5 * n
                flag = Flag.WARN if quality < BASE.quality_warn else Flag.PASS
                uid = f"{ROOT}.40.{n}"
                series_id = add_scored(
                    session, uid, T0, verdict_document(flag, quality), station="MR-EAST", protocol="t1"
                )
                series = session.get_one(Series, series_id)
                assessment = current_assessment(session, series_id)
                assert assessment is not None
                verdict = ReviewVerdict.NON_DIAGNOSTIC if quality < 30 else ReviewVerdict.ACCEPTABLE
                record_review(
                    session, series, assessment, reviewer="pg", verdict=verdict, kinds=[], comment="", at=T0
                )
            number, proposals = make_proposal(session, settings, model, min_count=10, at=T0)
            apply_proposal(session, number, by="pg", at=T0)
        with sessions() as session:
            chosen = chosen_limits(session, settings, "t1", model)
        assert chosen.source == f"site_limits/{number}"
        assert chosen.limits.quality_warn == pytest.approx(28.8, abs=1.5)
        assert {p.protocol for p in proposals} == {"", "t1"}
    finally:
        engine.dispose()


def test_the_site_benchmark_fits_on_one_half_and_measures_on_the_other() -> None:
    """The benchmark's split and figures on stand-in rows (quality falling with the applied severity),
    without the simulator: each protocol's fitted limits move the held-out figures toward its labels."""
    from qcgate.bench.calibration import PROTOCOLS, evaluate

    rng = random.Random(3)
    rows = []
    for seed in range(1500):  # 26 % of reviews flipped: a fit needs many to clear MIN_GAIN_SE
        for copy in range(4):
            applied = rng.random()
            quality = round(min(max(100 * (1 - applied) + rng.gauss(0, 5), 0), 100), 1)
            rows.append({"seed": seed, "copy": copy, "applied": applied, "quality": quality, "severity": 0.0})
    result = evaluate(rows)
    assert result["held_out"] + result["fit_reviews"] == len(rows)
    for protocol, reject_from in PROTOCOLS.items():
        row = result["protocols"][protocol]
        assert row["fitted"]
        assert row["limits"]["quality_warn"] == pytest.approx(100 * (1 - reject_from), abs=10)
        before = row["labels_default"]["sensitivity"] + row["labels_default"]["specificity"]
        after = row["labels_fitted"]["sensitivity"] + row["labels_fitted"]["specificity"]
        assert after >= before - 0.01, protocol
    dwi = result["protocols"]["dwi"]  # its readers reject far below the default limit: it moves
    assert dwi["limits"]["quality_warn"] < 40
    assert dwi["labels_fitted"]["specificity"] > dwi["labels_default"]["specificity"] + 0.1
