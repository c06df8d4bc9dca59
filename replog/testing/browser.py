"""Headless Chromium from Debian's packages (`chromium`, `chromium-driver`) driven by Selenium.

The live page's browser test and `python -m replog.testing.screenshot` use this one setup. The
browser and its driver are the system's (`.ci/install-browser.sh` installs them): nothing is
downloaded at run time, so Selenium Manager is never asked for a driver.
"""

from __future__ import annotations

import shutil
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

BROWSERS = ("chromium", "chromium-browser")
DRIVERS = ("chromedriver",)


def find_chromium() -> tuple[str, str] | None:
    """(browser, driver) paths, or None if either is missing."""
    browser = next((p for name in BROWSERS if (p := shutil.which(name))), None)
    driver = next((p for name in DRIVERS if (p := shutil.which(name))), None)
    return (browser, driver) if browser and driver else None


def headless_chromium(
    browser: str, driver: str, *, width: int = 1280, height: int = 1000
) -> webdriver.Chrome:
    """A headless Chromium whose console messages can be read back (`console_errors`)."""
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def console_errors(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """Console errors since the last call (failed requests and uncaught exceptions included)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]  # untyped in selenium
    return [entry for entry in entries if entry.get("level") == "SEVERE"]


def node_statuses(driver: WebDriver) -> dict[str, str]:
    """The live page's node table: node (a secondary's URL, or the node's own name) -> status."""
    rows = driver.execute_script(
        "return [...document.querySelectorAll('#nodes tbody tr')]"
        ".map((row) => [row.dataset.node, row.dataset.status]);"
    )
    return {str(node): str(status) for node, status in rows}


def latest_messages(driver: WebDriver) -> list[str]:
    """The messages in the page's 'Latest entries' list, newest first."""
    texts = driver.execute_script(
        "return [...document.querySelectorAll('#latest li[data-seq]')].map((li) => li.lastChild.textContent);"
    )
    return [str(text) for text in texts]
