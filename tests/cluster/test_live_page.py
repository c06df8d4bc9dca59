"""The live page in a real browser: headless Chromium (Debian's package) driven by Selenium.

Required when CI=true (`.ci/run` installs chromium and chromium-driver); skipped with the reason
elsewhere if they are missing. The page polls every 250 ms here so that a 2 s Suspected window is
seen several times over.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from replog.testing.browser import (
    console_errors,
    find_chromium,
    headless_chromium,
    latest_messages,
    node_statuses,
)
from replog.testing.cluster import LocalCluster
from tests.conftest import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SUSPECT_AFTER_S, UNHEALTHY_AFTER_S = 1.0, 3.0
TIMINGS = (
    "--heartbeat-interval=0.1",
    f"--suspect-after={SUSPECT_AFTER_S}",
    f"--unhealthy-after={UNHEALTHY_AFTER_S}",
    "--probe-timeout=0.3",
)
SLACK_S = 15.0  # a shared 2-core machine: the deadline of a poll, not a bound being asserted
PAGE = "/?poll_ms=250"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.fixture
def browser() -> Iterator[Chrome]:
    found = find_chromium()
    if found is None:
        reason = "chromium and chromedriver are not installed (.ci/install-browser.sh installs them)"
        if _in_ci():
            pytest.fail(f"the browser test is required when CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    driver = headless_chromium(*found)
    try:
        yield driver
    finally:
        driver.quit()


def statuses_seen(driver: WebDriver, url: str, wanted: str, seen: list[str]) -> bool:
    """Record each new status of `url` on the page; True once it shows `wanted`."""
    status = node_statuses(driver).get(url)
    if status is not None and (not seen or seen[-1] != status):
        seen.append(status)
    return status == wanted


def test_live_page_follows_a_paused_secondary_and_appends_from_its_form(
    make_cluster, browser: Chrome, tmp_path: Path
) -> None:
    cluster: LocalCluster = make_cluster(master_argv=TIMINGS).up()
    for i in range(30):
        cluster.client.append(f"warm-up-{i}", w=(i % 3) + 1)

    browser.get(cluster.master.url + PAGE)
    s1 = cluster.link_url("s1")
    wait_for(lambda: list(node_statuses(browser).values()) == ["Healthy"] * 3, SLACK_S, "three Healthy rows")
    assert set(node_statuses(browser)) == {"master", s1, cluster.link_url("s2")}
    assert browser.title == "master · replog"
    assert browser.find_element(By.ID, "role").text == "master"
    assert browser.find_element(By.ID, "epoch").text == "epoch 1"  # static mode
    browser.save_screenshot(str(tmp_path / "healthy.png"))
    if target := os.environ.get("REPLOG_SCREENSHOT"):  # e.g. docs/live-page.png
        shutil.copyfile(tmp_path / "healthy.png", target)

    # A paused secondary: Suspected, then Unhealthy, then Healthy again once resumed.
    seen: list[str] = ["Healthy"]
    cluster.pause("s1")
    try:
        wait_for(
            lambda: statuses_seen(browser, s1, "Suspected", seen), SUSPECT_AFTER_S + SLACK_S, "Suspected"
        )
        wait_for(
            lambda: statuses_seen(browser, s1, "Unhealthy", seen), UNHEALTHY_AFTER_S + SLACK_S, "Unhealthy"
        )
        badge = browser.find_element(By.CSS_SELECTOR, f'tr[data-node="{s1}"] .status')
        assert "status-unhealthy" in (badge.get_attribute("class") or ""), "shown in red"
    finally:
        cluster.resume("s1")
    wait_for(lambda: statuses_seen(browser, s1, "Healthy", seen), SLACK_S, "Healthy again")
    assert seen == ["Healthy", "Suspected", "Unhealthy", "Healthy"]
    events = browser.find_element(By.ID, "events").text
    assert f"{s1}: Healthy -> Suspected" in events and f"{s1}: Unhealthy -> Healthy" in events

    # An append from the page's form, with w=3, reaches every node.
    browser.find_element(By.ID, "append-message").send_keys("from the browser")
    Select(browser.find_element(By.ID, "append-w")).select_by_value("3")
    browser.find_element(By.ID, "append-send").click()
    result = wait_for(
        lambda: "acknowledged" in (text := browser.find_element(By.ID, "append-result").text) and text,
        SLACK_S,
        "the form's answer",
    )
    assert "acknowledged by 3 nodes (w=3)" in result
    for name in cluster.nodes:
        assert cluster.messages(name)[-1] == "from the browser", name
        browser.get(cluster.nodes[name].url + PAGE)
        wait_for(lambda: latest_messages(browser)[:1] == ["from the browser"], SLACK_S, f"{name}'s page")

    assert console_errors(browser) == []
