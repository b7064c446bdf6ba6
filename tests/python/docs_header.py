"""Reads the framex-rs header of the /docs page in headless Chromium, for the tests.

Run: python docs_header.py BASE_URL [PASSWORD]
Prints one JSON object: what a person sees in the header (runtime, start time,
plugin counts, action buttons, upstream health, migration modes, plugin cards),
whether Swagger UI rendered below it, whether any injected script ran, the console
errors, and, with PASSWORD, with the browser's popup blocker on and every request
taking 6 s (past Chromium's 5 s of user activation: a window opened when the answer
comes would be blocked): what pressing the "Redeploy" button shows (its form filled
with PASSWORD, then "Run") and where the window of its answer's URL goes, then where
the LINK buttons "Runbook" and "Vault" (its form filled with PASSWORD) open a window. Exits non-zero with a message on stderr when a step
cannot be done.
"""

import json
import sys
import time
import traceback

from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.support.ui import WebDriverWait

from docs_ui import By, driver, ec, wait


def texts(root, selector):
    return [node.text for node in root.find_elements(By.CSS_SELECTOR, selector)]


def press(browser, header, title, password):
    """Presses the action button `title`, types `password` in its form, runs it;
    returns the result line and body shown."""
    button = [b for b in header.find_elements(By.CSS_SELECTOR, ".fx-actions .fx-action") if b.text == title][0]
    button.click()
    field = wait(browser, ec.visibility_of_element_located((By.CSS_SELECTOR, "input[name='fx-action-password']")))
    field.send_keys(password)
    header.find_element(By.CSS_SELECTOR, ".fx-action-run").click()
    # The result line is replaced as the request goes: read it by script, not by a
    # reference that the page may have dropped.
    status = "var s = document.querySelector('.fx-action-status'); return s ? s.textContent : '';"
    wait(browser, lambda b: "status" in b.execute_script(status))
    body = "return Array.from(document.querySelectorAll('.fx-action-body')).map(function (n) { return n.textContent; });"
    return {"status": browser.execute_script(status), "body": browser.execute_script(body)}


def reached(browser, before):
    """The handle and URL of a window not in `before` once it is off about:blank and the
    docs' own paths (a browser may replace a window's view as it navigates: a handle
    that goes away meanwhile is skipped, the one that replaced it is found)."""
    def check(b):
        for handle in set(b.window_handles) - before:
            try:
                b.switch_to.window(handle)
                url = b.current_url or ""
            except WebDriverException:
                continue
            if url.startswith("http") and "/docs/" not in url:
                return handle, url
        return False
    return wait(browser, check)


def close_others(browser, main):
    """Closes every window but `main`, and goes back to it."""
    for handle in browser.window_handles:
        if handle != main:
            try:
                browser.switch_to.window(handle)
                browser.close()
            except WebDriverException:
                pass
    browser.switch_to.window(main)


def opened_url(browser, main):
    """The URL the window opened from `main` reaches (closed then)."""
    _, url = reached(browser, {main})
    close_others(browser, main)
    return url


def open_link(browser, header, title, password):
    """Presses the LINK button `title` (typing `password` in its form, if it asks);
    returns the URL the window it opened reaches (None when no window opened)."""
    main = browser.current_window_handle
    before = set(browser.window_handles)
    button = [b for b in header.find_elements(By.CSS_SELECTOR, ".fx-actions .fx-action") if b.text == title][0]
    button.click()
    fields = browser.find_elements(By.CSS_SELECTOR, "input[name='fx-action-password']")
    if fields and fields[0].is_displayed():
        fields[0].send_keys(password)
        header.find_element(By.CSS_SELECTOR, ".fx-action-run").click()
    try:
        WebDriverWait(browser, 3).until(lambda b: set(b.window_handles) - before)
    except TimeoutException:
        # No window now: a blocked one would never come; one opened late would.
        time.sleep(15)
        if not set(browser.window_handles) - before:
            return None
    _, url = reached(browser, before)
    close_others(browser, main)
    return url


def main() -> None:
    base = sys.argv[1]
    browser = driver(block_popups=True)
    try:
        browser.get(base + "/docs")
        header = wait(browser, ec.presence_of_element_located((By.CSS_SELECTOR, "#framex-header .fx-status")))
        header = browser.find_element(By.ID, "framex-header")
        wait(browser, ec.presence_of_element_located((By.CSS_SELECTOR, ".swagger-ui .info .title")))
        seen = {
            "runtime": texts(header, ".fx-runtime"),
            "started": texts(header, ".fx-started"),
            "loaded": texts(header, ".fx-loaded"),
            "failed": texts(header, ".fx-failed, .fx-none"),
            "buttons": [
                {"title": b.text, "tag": b.tag_name, "href": b.get_attribute("href"),
                 "disabled": b.get_attribute("disabled") is not None}
                for b in header.find_elements(By.CSS_SELECTOR, ".fx-action")
            ],
            "upstreams": [
                {"url": li.find_element(By.CSS_SELECTOR, ".fx-upstream-url").text,
                 "health": li.find_element(By.CSS_SELECTOR, ".fx-health").text}
                for li in header.find_elements(By.CSS_SELECTOR, ".fx-upstream")
            ],
            "migration": [
                {"route": li.find_element(By.CSS_SELECTOR, ".fx-route-path").text,
                 "mode": li.find_element(By.CSS_SELECTOR, ".fx-mode").text}
                for li in header.find_elements(By.CSS_SELECTOR, ".fx-route")
            ],
            "cards": [
                {"name": c.find_element(By.CSS_SELECTOR, ".fx-card-name").text,
                 "description": "".join(texts(c, ".fx-card-description")),
                 "author": c.find_element(By.CSS_SELECTOR, ".fx-card-author").text,
                 "version": c.find_element(By.CSS_SELECTOR, ".fx-card-version").text,
                 "repo": [a.get_attribute("href") for a in c.find_elements(By.CSS_SELECTOR, ".fx-card-repo")]}
                for c in header.find_elements(By.CSS_SELECTOR, ".fx-card")
            ],
            "injected_elements": len(header.find_elements(By.CSS_SELECTOR, "script, img, iframe")),
            "pwned": browser.execute_script("return window.__fx_pwned === true"),
            "swagger_title": browser.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text,
            "errors": [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"],
        }
        if len(sys.argv) > 2:
            browser.set_network_conditions(offline=False, latency=6000, download_throughput=-1, upload_throughput=-1)
            main = browser.current_window_handle
            seen["action"] = press(browser, header, "Redeploy", sys.argv[2])
            seen["action"]["opened"] = [opened_url(browser, main)]
            seen["links"] = {title: open_link(browser, header, title, sys.argv[2]) for title in ("Runbook", "Vault")}
        print(json.dumps(seen))
    except Exception as e:  # noqa: BLE001 - the test shows what failed
        print(f"docs_header.py: {type(e).__name__}: {e}", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
    finally:
        browser.quit()


if __name__ == "__main__":
    main()
