"""Logs in to the docs of a running framex-rs in headless Chromium, for the tests.

Run: python docs_login_ui.py BASE_URL
The server has [auth.oauth] pointing at a stand-in provider that grants at once.
Prints one JSON object:
  {"landed": URL, "title": "...",             /docs after the login: where, Swagger UI's title
   "session": {...} | null,                   the framex_token cookie as the browser holds it
   "state_left": bool,                        whether the state cookie is still there
   "signed_out": "...", "after_logout": URL,  the page and address after "Sign out"
   "session_after_logout": bool}              whether framex_token survived it
Exits non-zero with a message on stderr when a step cannot be done.
"""

import json
import sys

from selenium.webdriver.common.by import By

from docs_ui import driver, wait


def cookie(browser, name: str):
    return next((c for c in browser.get_cookies() if c["name"] == name), None)


def main() -> None:
    base = sys.argv[1]
    browser = driver()
    out = {}
    try:
        browser.get(f"{base}/docs")
        title = wait(browser, lambda b: b.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title"))
        out["landed"] = browser.current_url
        out["title"] = title.text
        out["session"] = cookie(browser, "framex_token")
        out["state_left"] = cookie(browser, "framex_oauth_state") is not None
        wait(browser, lambda b: b.find_element(By.ID, "docs-logout")).click()
        heading = wait(browser, lambda b: b.find_element(By.ID, "signed-out"))
        out["signed_out"] = heading.text
        out["after_logout"] = browser.current_url
        out["session_after_logout"] = cookie(browser, "framex_token") is not None
    finally:
        browser.quit()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
