"""Browser checks of `tt run --dashboard` in headless Chromium (selenium).

Usage: browser.py URL PROJECT_DIR PID — URL as tt printed it (with the
token), PROJECT_DIR the town's project, where `go` releases the task
`gate`, PID the `tt` serving the page (stopped last, to see the page say
it is disconnected).
Run by tests/dashboard/browser.rs; exits non-zero with what failed.
"""

import os
import signal
import sys
import time
import urllib.error
import urllib.request

from selenium.webdriver.common.by import By

from chrome import chrome, wait as wait_within

URL, PROJECT, SERVER = sys.argv[1], sys.argv[2], int(sys.argv[3])
BASE = URL.split("/?")[0]
TASKS = ["quick", "gate", "flaky", "group", "child", "after"]
DEADLINE = 30.0


def wait(what, fn, within=DEADLINE):
    return wait_within(what, fn, within)


def status(driver, task):
    els = driver.find_elements(By.CSS_SELECTOR, f'#graph [data-task="{task}"]')
    return els[0].get_attribute("data-status") if els else None


def main():
    # Refused without the token, in the browser and to a plain request.
    try:
        urllib.request.urlopen(BASE + "/api/tasks")
        raise SystemExit("a request without the token was answered")
    except urllib.error.HTTPError as e:
        assert e.code == 401, e.code

    driver = chrome()
    try:
        driver.get(BASE + "/")
        assert "needs the access token" in driver.page_source, driver.page_source[:500]

        driver.get(URL)
        # Every task is on the page.
        wait("every task is listed", lambda: all(status(driver, t) for t in TASKS))
        wait("the stream is live", lambda: driver.find_element(By.ID, "disconnected").get_attribute("hidden") is not None)
        print("listed:", {t: status(driver, t) for t in TASKS})

        # A task that completes changes its data-status within a second.
        wait("gate is running on the page", lambda: status(driver, "gate") == "running")
        open(os.path.join(PROJECT, "go"), "w").close()
        released = time.monotonic()
        wait("gate completes on the page", lambda: status(driver, "gate") == "completed", within=5)
        took = time.monotonic() - released
        print(f"gate completed on the page {took:.3f}s after it was released")
        assert took < 1.0, f"the page took {took:.3f}s (more than a second) to show gate completed"

        # The attention strip names the failed task; retry runs it again.
        wait("flaky fails", lambda: status(driver, "flaky") == "failed")
        wait("the attention strip lists flaky", lambda: driver.find_elements(By.CSS_SELECTOR, '#attention [data-task="flaky"]'))
        driver.find_element(By.CSS_SELECTOR, '#graph [data-task="flaky"]').click()
        button = wait("the retry button", lambda: driver.find_element(By.CSS_SELECTOR, '#panel [data-task="flaky"] [data-action="retry"]'))
        button.click()
        wait("flaky completes after the retry", lambda: status(driver, "flaky") == "completed")
        wait("the panel shows two attempts", lambda: len(driver.find_elements(By.CSS_SELECTOR, "#panel [data-attempt]")) == 2)
        wait("the attention strip is empty again", lambda: driver.find_element(By.ID, "attention").text.strip() == "")
        wait("every task completed", lambda: all(status(driver, t) == "completed" for t in TASKS))
        bars = lambda: driver.find_elements(By.CSS_SELECTOR, "#timeline .bar")
        wait("one timeline bar per attempt (6)", lambda: len(bars()) >= 6, within=5)
        edges = driver.find_elements(By.CSS_SELECTOR, "#edges path")
        assert len(edges) >= 2, f"depends_on edges are drawn, got {len(edges)}"
        agents = lambda: driver.find_elements(By.CSS_SELECTOR, "#agents [data-agent]")
        wait("three workers listed", lambda: len(agents()) == 3, within=5)

        # A lost connection is said, not shown as live.
        os.kill(SERVER, signal.SIGTERM)
        banner = driver.find_element(By.ID, "disconnected")
        wait("the page says it is disconnected", lambda: banner.is_displayed(), within=10)
        assert banner.text == "disconnected — retrying", banner.text
        assert "stale" in driver.find_element(By.TAG_NAME, "body").get_attribute("class")
    finally:
        driver.quit()
    print("all browser checks passed")


main()
