"""The QC page in a real browser: Debian's chromium, driven by Selenium through chromedriver, against
a real ``qcgate serve`` with named clients. Series arrive over DICOM from DCMTK storescu. With the
keyboard alone a person logs in, finds the series on the worklist, opens it with Enter, scrolls its
slices and records a review that REST then lists; the mosaic and the slice load; the trends view
draws; and no page logs a console error. With QCGATE_WRITE_SCREENSHOTS=1 it also writes the
screenshots of docs/page.md (docs/images/page-*.png)."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from qcgate.harness.peers import QCGate, require_peer, storescu
from qcgate.synthetic.demo_series import write_phantom_series

pytestmark = pytest.mark.peers

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
TOKEN = "review-browser-token-0123456789abcdef"
CLIENTS = {"radiographer": {"token": TOKEN, "role": "review"}}
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "images"
WAIT_S = 30.0
ROW_UIDS = (
    "return Array.from(document.querySelectorAll('#worklist tbody tr[data-uid]')).map(r => r.dataset.uid)"
)
SELECTED_UID = "const row = document.querySelector('#worklist tr.selected'); return row && row.dataset.uid"


def write_screenshots() -> bool:
    return os.environ.get("QCGATE_WRITE_SCREENSHOTS") == "1"


@pytest.fixture
def browser() -> Iterator[Any]:
    require_peer("chromium", Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists())
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def console_errors(driver: Any) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def keys(driver: Any, *sequence: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).send_keys(*sequence).perform()


def shoot(driver: Any, name: str) -> None:
    if write_screenshots():
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(SCREENSHOTS / f"page-{name}.png"))


def send_series(gate: QCGate, directory: Path, seed: int) -> str:
    uid, files = write_phantom_series(
        directory,
        shape=(24, 128, 128),
        seed=seed,
        patient_id=f"PAT{seed:04d}",
        study_datetime=datetime.now(UTC),
    )
    sent = storescu(gate.dicom_port, files, calling_ae="MRSCANNER1")
    assert sent.returncode == 0, sent.stderr
    return uid


def wait_scored(gate: QCGate, uid: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def scored() -> dict[str, Any] | None:
        response = httpx.get(f"{gate.base_url}/api/v1/series/{uid}", headers=headers, timeout=10)
        body = response.json() if response.status_code == 200 else {}
        return body if body.get("status") in ("done", "not_assessable", "failed") else None

    return wait_until(scored, f"series {uid} scored", timeout=120)


def route_exists(gate: QCGate, path: str) -> bool:
    """Whether this build serves ``path`` (REVIEWS/DRIFT routes may not exist yet: a 404 'Not Found')."""
    response = httpx.get(f"{gate.base_url}{path}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    return not (response.status_code == 404 and response.json().get("detail") == "Not Found")


def test_the_page_in_chromium_with_the_keyboard_alone(
    start_qcgate: Callable[..., QCGate], browser: Any, tmp_path: Path
) -> None:
    require_peer("DCMTK storescu", shutil.which("/usr/bin/storescu") is not None)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    gate = start_qcgate(api_clients=json.dumps(CLIENTS))
    older = send_series(gate, tmp_path / "older", seed=3)
    wait_scored(gate, older)
    newer = send_series(gate, tmp_path / "newer", seed=5)
    wait_scored(gate, newer)
    base = gate.base_url

    # log in: the page sends us to /login and back
    browser.get(f"{base}/")
    wait_until(lambda: "/login" in browser.current_url, "the login page")
    shoot(browser, "login")
    keys(browser, TOKEN, Keys.ENTER)  # the token field has the focus
    wait_until(lambda: browser.current_url.rstrip("/") == base, "the worklist after login")

    # the worklist: newest first, the patient columns (review includes images), j/k and Enter
    # read in one script: the live update may replace the rows between two WebDriver calls
    def uids() -> list[str]:
        return list(browser.execute_script(ROW_UIDS))

    def selected() -> str | None:
        uid = browser.execute_script(SELECTED_UID)
        return str(uid) if uid else None

    assert wait_until(lambda: uids() == [newer, older], "the worklist rows, newest first")
    patient = "return document.querySelector('#worklist tbody tr[data-uid] td.patient').textContent"
    assert browser.execute_script(patient) == "PAT0005", "the patient ID, for the images role"
    assert selected() == newer
    # live: a series that arrives now appears on top without a reload, and the selection stays
    latest = send_series(gate, tmp_path / "latest", seed=7)
    wait_until(lambda: uids()[:1] == [latest], "the new series on the live worklist")
    assert selected() == newer
    keys(browser, "j")
    assert selected() == older
    keys(browser, "k")
    assert selected() == newer
    shoot(browser, "worklist")
    keys(browser, "j", Keys.ENTER)
    wait_until(lambda: browser.current_url.endswith(f"/series/{older}"), "the series view")

    # the series view: mosaic and slice load; the keyboard scrolls the slices
    loaded = (
        "const image = document.getElementById(arguments[0]); return image.complete && image.naturalWidth"
    )
    assert wait_until(lambda: browser.execute_script(loaded, "mosaic"), "the mosaic") > 0
    assert wait_until(lambda: browser.execute_script(loaded, "slice"), "the slice") > 0
    caption = browser.find_element(By.ID, "slice-caption")
    first = wait_until(lambda: caption.text, "the slice caption")
    browser.find_element(By.ID, "slice").send_keys(Keys.ARROW_DOWN)
    wait_until(lambda: caption.text and caption.text != first, "the next slice")
    assert browser.execute_script("return document.activeElement.id") == "slice"
    wait_until(lambda: browser.execute_script(loaded, "slice"), "the next slice's image")
    shoot(browser, "series")

    # a review recorded on the page appears in REST (where this build has reviews)
    if route_exists(gate, f"/api/v1/series/{older}/reviews"):
        form = browser.find_element(By.ID, "review-form")
        form.find_element(By.CSS_SELECTOR, 'input[value="non_diagnostic"]').send_keys(Keys.SPACE)
        form.find_element(By.CSS_SELECTOR, 'input[name="kinds"][value="motion"]').send_keys(Keys.SPACE)
        comment = form.find_element(By.ID, "comment")
        comment.send_keys("ghosting in the browser test")
        form.find_element(By.CSS_SELECTOR, 'button[type="submit"]').send_keys(Keys.ENTER)
        message = browser.find_element(By.ID, "review-message")
        wait_until(lambda: message.text, "the review's answer")
        assert message.text == "Review recorded.", message.text
        reviews = httpx.get(
            f"{base}/api/v1/series/{older}/reviews", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        ).json()
        items = reviews if isinstance(reviews, list) else reviews["items"]
        assert [(r["reviewer"], r["verdict"], r["kinds"], r["comment"]) for r in items] == [
            ("radiographer", "non_diagnostic", ["motion"], "ghosting in the browser test")
        ]
    assert console_errors(browser) == []
    keys(browser, Keys.ESCAPE)
    wait_until(lambda: browser.current_url.rstrip("/") == base, "the worklist after Esc")

    # the trends view draws (where this build has trends), or says why not
    browser.get(f"{base}/trends")
    message = browser.find_element(By.ID, "trends-message")
    wait_until(lambda: message.text and message.text != "Loading…", "the trends")
    if route_exists(gate, "/api/v1/trends"):
        charts = wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "svg.trend"), "a trend chart")
        assert charts[0].find_elements(By.CSS_SELECTOR, "circle.dot"), "the series are drawn"
        assert charts[0].find_elements(By.CSS_SELECTOR, "line.warn"), "the site's warn limit is drawn"
    else:
        assert "not available" in message.text
    shoot(browser, "trends")

    # the pairs view shows two series of the protocol side by side (where this build has pairs)
    browser.get(f"{base}/pairs")
    pairs_message = browser.find_element(By.ID, "pairs-message")
    wait_until(lambda: pairs_message.text and pairs_message.text != "Loading…", "the pairs")
    if route_exists(gate, "/api/v1/pairs/next"):
        assert wait_until(lambda: browser.execute_script(loaded, "left"), "the left mosaic") > 0
        assert wait_until(lambda: browser.execute_script(loaded, "right"), "the right mosaic") > 0
    shoot(browser, "pairs")
    assert console_errors(browser) == []
