"""The QC page's HTML in-process: the worklist (newest first, filters, patient columns only for the
images role, and logged), the series view (findings with their worst slices, charts, reports, the
review form by role, a pruned series), the other views, the static files, and nothing fetched from
outside the installation. The same pages in a real browser: tests/test_page_browser.py."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import pytest

from qcgate.api.web.templating import HERE
from tests.page_store import (
    ACCESSION,
    AUTO_UID,
    HEADER_UID,
    NO_IMAGES_UID,
    PATIENT_ID,
    PRUNED_UID,
    PageApp,
)

TOKENS = {role: f"{role}-page-token-0123456789" for role in ("read", "images", "review")}
CLIENTS = {f"{role}-desk": {"token": token, "role": role} for role, token in TOKENS.items()}


def logged_in(make_app: Callable[..., PageApp], role: str) -> PageApp:
    page = make_app(api_clients=CLIENTS)
    response = page.client.post("/login", data={"token": TOKENS[role]}, follow_redirects=False)
    assert response.status_code == 303
    return page


def row_uids(html: str) -> list[str]:
    return re.findall(r'<tr data-uid="([0-9.]+)"', html)


def test_the_worklist_is_newest_first_with_patient_columns_for_the_images_role(
    make_app: Callable[..., PageApp], caplog: pytest.LogCaptureFixture
) -> None:
    page = logged_in(make_app, "images")
    with caplog.at_level(logging.INFO, logger="qcgate.access"):
        html = page.client.get("/").text
    assert row_uids(html) == [NO_IMAGES_UID, PRUNED_UID, AUTO_UID, HEADER_UID]
    assert "<th>Patient ID</th>" in html
    assert PATIENT_ID in html
    assert ACCESSION in html
    assert "2026-11-21 10:00" in html, "exam time from SeriesDate/SeriesTime"
    header_row = html[html.index(f'<tr data-uid="{HEADER_UID}"') :]
    assert "t1_mprage_tra" in header_row
    assert "motion 61" in header_row
    assert ">warn<" in header_row
    assert re.search(r'<td class="num">42</td>', header_row), "quality"
    assert "client=images-desk role=images viewed patient data of 3 series" in caplog.text
    assert PATIENT_ID not in caplog.text


def test_the_read_role_sees_no_patient_columns(
    make_app: Callable[..., PageApp], caplog: pytest.LogCaptureFixture
) -> None:
    page = logged_in(make_app, "read")
    with caplog.at_level(logging.INFO, logger="qcgate.access"):
        html = page.client.get("/").text + page.client.get("/worklist/rows").text
    assert "Patient ID" not in html
    assert PATIENT_ID not in html
    assert ACCESSION not in html
    assert len(row_uids(html)) == 8
    assert "viewed patient data" not in caplog.text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("flag=warn", [HEADER_UID]),
        ("flag=fail", []),
        ("station=QCGATE", [NO_IMAGES_UID, PRUNED_UID, AUTO_UID, HEADER_UID]),
        ("station=ELSEWHERE", []),
        ("protocol=t2_tse", [AUTO_UID]),
        ("date=2026-11-21", [NO_IMAGES_UID, PRUNED_UID, AUTO_UID, HEADER_UID]),
        ("date=2026-11-22", []),
        ("limit=2", [NO_IMAGES_UID, PRUNED_UID]),
    ],
)
def test_worklist_filters(make_app: Callable[..., PageApp], query: str, expected: list[str]) -> None:
    page = make_app()
    assert row_uids(page.client.get(f"/?{query}").text) == expected
    rows = page.client.get(f"/worklist/rows?{query}")
    assert rows.status_code == 200
    assert row_uids(rows.text) == expected
    assert "<html" not in rows.text, "the live update is the rows alone"


def test_a_filter_that_cannot_be_used_is_named_not_a_500(make_app: Callable[..., PageApp]) -> None:
    page = make_app()
    response = page.client.get("/?flag=awful&date=yesterday")
    assert response.status_code == 200
    assert "unknown flag &#39;awful&#39;" in response.text
    assert "is not a date" in response.text
    assert page.client.get("/?limit=0").status_code == 422


def test_the_series_view_shows_the_verdict_findings_charts_and_images(
    make_app: Callable[..., PageApp],
) -> None:
    page = logged_in(make_app, "images")
    html = page.client.get(f"/series/{HEADER_UID}").text
    assert 'id="flag">warn<' in html
    assert 'id="quality">42<' in html
    assert "motion: severity 61 over the warn limit 50" in html
    assert "axial 48 &times; 64" in html, "the acquired grid the verdict judged on"
    assert re.findall(r'data-slice="(\d+)"', html) == ["7", "3"], (
        "worst slices, worst first, by InstanceNumber"
    )
    assert f'src="/api/v1/series/{HEADER_UID}/mosaic.png"' in html
    assert f'src="/api/v1/series/{HEADER_UID}/slices.svg?metric=snr"' in html
    assert "No reports issued." in html
    assert "No deliveries." in html
    assert 'id="review-form"' not in html, "the images role may not review"
    assert page.client.get(f"/api/v1/series/{HEADER_UID}/slices.svg?metric=snr").status_code == 200


def test_the_review_form_is_shown_to_the_review_role(make_app: Callable[..., PageApp]) -> None:
    html = logged_in(make_app, "review").client.get(f"/series/{HEADER_UID}").text
    assert 'id="review-form"' in html
    assert 'value="non_diagnostic"' in html
    assert 'name="kinds" value="motion"' in html


def test_without_the_images_role_the_series_view_says_why_there_are_no_images(
    make_app: Callable[..., PageApp],
) -> None:
    html = logged_in(make_app, "read").client.get(f"/series/{HEADER_UID}").text
    assert "mosaic.png" not in html
    assert "Images need the images role" in html


def test_a_pruned_series_shows_its_results_and_says_its_pixels_are_gone(
    make_app: Callable[..., PageApp],
) -> None:
    html = make_app().client.get(f"/series/{PRUNED_UID}").text
    assert "were pruned on 2026-12-22 (retention)" in html
    assert "mosaic.png" not in html


def test_an_unknown_series_page_is_a_404_page(make_app: Callable[..., PageApp]) -> None:
    response = make_app().client.get("/series/1.2.3.4")
    assert response.status_code == 404
    assert "No series 1.2.3.4" in response.text


@pytest.mark.parametrize("path", ["/trends", "/pairs", "/admin/limits"])
def test_the_other_views_render(make_app: Callable[..., PageApp], path: str) -> None:
    page = logged_in(make_app, "read")
    response = page.client.get(path)
    assert response.status_code == 200
    assert re.search(r'<script src="/static/\w+\.js" defer>', response.text)


def test_the_pairs_view_asks_nothing_of_a_role_that_may_not_judge(make_app: Callable[..., PageApp]) -> None:
    read = logged_in(make_app, "read").client.get("/pairs").text
    assert 'data-may-review="no"' in read
    assert "Judging pairs needs the review role." in read
    assert 'data-may-review="yes"' in logged_in(make_app, "review").client.get("/pairs").text


def test_static_files_are_a_fixed_list(make_app: Callable[..., PageApp]) -> None:
    page = make_app()
    for name in ("page.js", "worklist.js", "series.js", "trends.js", "pairs.js", "limits.js", "page.css"):
        response = page.client.get(f"/static/{name}")
        assert response.status_code == 200, name
    assert page.client.get("/static/page.js").headers["content-type"].startswith("text/javascript")
    assert page.client.get("/static/missing.js").status_code == 404
    assert page.client.get("/static/..%2Ftemplating.py").status_code == 404


def test_nothing_is_fetched_from_outside_the_installation() -> None:
    """No CDN, no web font, no remote script: the page works on an isolated network."""
    allowed = {"http://www.w3.org/2000/svg"}  # an XML namespace name, never fetched
    for path in [*HERE.glob("templates/*.html"), *HERE.glob("static/*")]:
        urls = set(re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\"' )]*", path.read_text()))
        assert urls <= allowed, (path.name, urls - allowed)
