"""The resilience page in a real headless Chromium, against Users and Orders as real processes.

Chromium and its driver are Debian's (``scripts/browser.sh``, run by ``make test``);
Selenium is pointed at ``/usr/bin/chromedriver`` so it never downloads one. Every verdict
is read from what the browser shows, waited for by polling the DOM with a generous timeout.

``RESILIENCE_SCREENSHOT=docs/resilience-page.png`` also saves the page during the outage
(that is how the picture in docs/tutorial.md is made).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from bench.stack import ROOT

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

pytestmark = pytest.mark.e2e

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Generous: a busy CI machine. The verdicts never depend on it, only how long we wait.
WAIT = 60

if not os.path.exists(CHROMEDRIVER):  # CI (as root) installs it: make browser
    if os.environ.get("CI"):
        raise RuntimeError("CI must have Chromium: scripts/browser.sh did not install it")
    pytest.skip(
        "Chromium is not installed: run scripts/browser.sh as root", allow_module_level=True
    )


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,1000")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    yield driver
    driver.quit()


def text_of(driver: webdriver.Chrome, css: str) -> str:
    try:
        return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, css))
    except StaleElementReferenceException:  # the page redrew it meanwhile: ask again
        return ""


def wait_for_text(driver: webdriver.Chrome, css: str, expected: str) -> None:
    WebDriverWait(driver, WAIT, poll_frequency=0.1).until(
        lambda d: expected in text_of(d, css),
        message=f"{css!r} never showed {expected!r}",
    )


def wait_for_breaker(driver: webdriver.Chrome, state: str) -> None:
    """Exactly ``state``: "open" must not match "half-open"."""
    WebDriverWait(driver, WAIT, poll_frequency=0.1).until(
        lambda d: text_of(d, "[data-testid=breaker-users]") == state,
        message=f"the breaker never showed {state!r}",
    )


def burst(driver: webdriver.Chrome) -> None:
    """Click burst and wait until every request of it has been answered."""
    driver.execute_script("document.getElementById('burst-result').dataset.done = ''")
    driver.find_element(By.ID, "burst").click()
    WebDriverWait(driver, WAIT, poll_frequency=0.1).until(
        lambda d: d.find_element(By.ID, "burst-result").get_attribute("data-done") == "20",
        message="the burst never finished",
    )


def start_from_page(browser, mode: str, value: str) -> None:
    """Type ``value`` into the mode's argument and press its button, as a person would."""
    button = browser.find_element(By.CSS_SELECTOR, f"button[data-mode={mode}]")
    field = button.find_element(By.XPATH, "..").find_element(By.NAME, "value")
    field.clear()
    field.send_keys(value)
    button.click()


def test_a_fault_started_on_the_page_opens_the_breaker_and_clearing_it_closes_it(
    stack, browser
) -> None:
    """Page loads; error 502 from the page + burst: open; clear + burst: closed again."""
    # DEBUG on for Orders: the page is open to anyone there (the staff rule is tested with
    # Django's client in tests/integration/test_resilience_page.py). Short backoff and
    # reset so the burst opens the breaker quickly and the probe is soon due.
    s = stack(
        DJANGO_DEBUG="1",
        USERS_BACKOFF_FACTOR="0.01",
        USERS_BREAKER_RESET="0.5",
    )
    browser.get(f"{s.orders.url}/resilience/")
    wait_for_breaker(browser, "closed")
    wait_for_text(browser, "#fault", "No simulated outage")

    start_from_page(browser, "error", "502")
    wait_for_text(browser, "#fault", "Simulated outage active: error 502")
    assert "error 502" in s.manage("simulate_outage", "status")  # the row is really there

    burst(browser)
    wait_for_breaker(browser, "open")
    wait_for_text(browser, ".upstream[data-upstream=users] .row.failed", "failed")
    if target := os.environ.get("RESILIENCE_SCREENSHOT"):
        browser.save_screenshot(str(ROOT / target))

    browser.find_element(By.ID, "clear").click()
    wait_for_text(browser, "#fault", "No simulated outage")
    wait_for_text(browser, ".breaker", "probe due")  # the reset is over: a call will probe
    burst(browser)  # its first call is the probe; it succeeds
    wait_for_breaker(browser, "closed")
    assert "200" in text_of(browser, "#burst-result")
    assert "closed (probe succeeded)" in text_of(browser, ".transitions")


def test_an_invalid_fault_shows_the_commands_error_and_writes_nothing(stack, browser) -> None:
    s = stack(DJANGO_DEBUG="1")
    browser.get(f"{s.orders.url}/resilience/")
    wait_for_breaker(browser, "closed")
    start_from_page(browser, "error", "200")
    wait_for_text(browser, "#fault-errors", "--status must be an HTTP error status, 400..599")
    assert "No simulated outage" in s.manage("simulate_outage", "status")


def test_with_several_replicas_a_fault_for_one_is_chosen_on_the_page(stack, browser) -> None:
    """The target selector: replica 2 only; the fault line names it; Users (replica 1) is
    untouched; a fault for all then replaces it.
    """
    s = stack(DJANGO_DEBUG="1", USERS_REPLICAS="3")
    browser.get(f"{s.orders.url}/resilience/")
    wait_for_breaker(browser, "closed")
    Select(browser.find_element(By.ID, "fault-target")).select_by_value("2")
    start_from_page(browser, "error", "503")
    wait_for_text(browser, "#fault", "Replica 2: Simulated outage active: error 503")
    assert s.manage("simulate_outage", "status").startswith("Replica 2: Simulated outage")
    burst(browser)  # Users here is replica 1: not hit
    assert text_of(browser, "#burst-result") == "20/20 answered: 20\u00d7 200"

    Select(browser.find_element(By.ID, "fault-target")).select_by_value("all")
    start_from_page(browser, "error", "502")
    wait_for_text(browser, "#fault", "Simulated outage active: error 502")
    assert "Replica 2" not in s.manage("simulate_outage", "status")
