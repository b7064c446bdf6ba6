"""Drives the docs pages of a running framex-rs in headless Chromium, for the tests.

Run: python docs_ui.py BASE_URL UPLOAD_FILE KEY
(KEY: typed into Swagger UI's "Authorize" for the FrameXKey scheme, our [auth] rules)
Uses Debian's chromium and chromium-driver (no download: Selenium Manager is kept
offline). Prints one JSON object:
  {"form": {"status": "200", "body": {...}},      POST /api/v1/form tried in Swagger UI
   "upload": {"status": "200", "body": {...}},    POST /api/v1/upload (multipart, files)
   "redoc": {"title": "...", "errors": [...]}}    /redoc loaded: its title, console errors
Exits non-zero with a message on stderr when a step cannot be done.
"""

import json
import os
import shutil
import sys

os.environ.setdefault("SE_OFFLINE", "true")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

TIMEOUT = 60


def driver(block_popups: bool = False) -> webdriver.Chrome:
    """Headless Chromium; with `block_popups`, its popup blocker on, as a person's
    browser has it (chromedriver turns it off by default)."""
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-extensions", "--window-size=1400,4000"):
        options.add_argument(arg)
    if block_popups:
        options.add_experimental_option("excludeSwitches", ["disable-popup-blocking"])
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(options=options, service=service)


def wait(browser, condition):
    return WebDriverWait(browser, TIMEOUT).until(condition)


def authorize(browser, scheme: str, key: str) -> None:
    """Enters `key` for `scheme` in Swagger UI's "Authorize" dialog."""
    wait(browser, ec.element_to_be_clickable((By.CSS_SELECTOR, "button.authorize"))).click()
    container = wait(browser, ec.presence_of_element_located((By.XPATH, (
        "//div[contains(concat(' ', normalize-space(@class), ' '), ' auth-container ')]"
        f"[.//h4[contains(., '{scheme}')]]"))))
    container.find_element(By.CSS_SELECTOR, "input").send_keys(key)
    container.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper button.authorize").click()
    browser.find_element(By.CSS_SELECTOR, ".dialog-ux .close-modal").click()


def open_operation(browser, path: str):
    """Expands the operation of `path` and presses "Try it out"; returns its block."""
    block = wait(browser, ec.presence_of_element_located((By.XPATH, (
        "//div[contains(concat(' ', normalize-space(@class), ' '), ' opblock-post ')]"
        f"[.//*[@data-path='{path}']]"))))
    summary = block.find_element(By.CSS_SELECTOR, ".opblock-summary")
    browser.execute_script("arguments[0].scrollIntoView()", summary)
    summary.click()
    button = wait(browser, lambda _: block.find_element(By.CSS_SELECTOR, ".try-out__btn"))
    button.click()
    return block


def field(block, name: str):
    row = block.find_element(By.CSS_SELECTOR, f"tr[data-property-name='{name}']")
    found = row.find_element(By.CSS_SELECTOR, "input")
    if found.get_attribute("type") != "file":
        found.clear()  # Swagger UI fills in an example ("string")
    return found


def execute(browser, block) -> dict:
    button = block.find_element(By.CSS_SELECTOR, "button.execute")
    browser.execute_script("arguments[0].scrollIntoView()", button)
    button.click()
    status = wait(browser, lambda _: block.find_element(
        By.CSS_SELECTOR, ".live-responses-table .response .response-col_status"))
    body = wait(browser, lambda _: block.find_element(
        By.CSS_SELECTOR, ".live-responses-table .response-col_description pre"))
    text = body.text
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = text
    return {"status": status.text.strip(), "body": parsed}


def main() -> None:
    base, upload_file, key = sys.argv[1], sys.argv[2], sys.argv[3]
    browser = driver()
    out = {}
    try:
        browser.get(f"{base}/docs")
        authorize(browser, "FrameXKey", key)
        block = open_operation(browser, "/api/v1/form")
        field(block, "name").send_keys("Ada")
        field(block, "age").send_keys("36")
        out["form"] = execute(browser, block)

        block = open_operation(browser, "/api/v1/upload")
        field(block, "file_a").send_keys(upload_file)
        field(block, "file_b").send_keys(upload_file)
        field(block, "label").send_keys("two files")
        out["upload"] = execute(browser, block)

        browser.get_log("browser")  # what the docs page logged is not ReDoc's
        browser.get(f"{base}/redoc")
        wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "h1"))
        title = browser.find_element(By.CSS_SELECTOR, "h1").text
        errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        out["redoc"] = {"title": title, "errors": errors}
    finally:
        browser.quit()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
