#!/usr/bin/env python3
"""Takes the README's screenshot of the dashboard: docs/dashboard.png.

Runs `tt run --dashboard` on a copy of examples/shop.toml in a temporary
directory (its own embedded redis-server), waits until every task finished,
selects the group `auth`, and photographs the page in headless Chromium.

Usage: scripts/screenshot.py [TT_BINARY] [OUTPUT]
(defaults: target/debug/tt, docs/dashboard.png; needs chromium,
chromedriver and python selenium, like the browser tests).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/debug/tt"))
OUT = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "docs/dashboard.png"))


def wait(what, fn, within=30.0):
    start = time.monotonic()
    while time.monotonic() - start < within:
        try:
            if fn():
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting until {what}")


def main():
    env = {k: v for k, v in os.environ.items() if not k.startswith("TT_") and k != "REDIS_URL"}
    with tempfile.TemporaryDirectory() as d:
        shutil.copy(os.path.join(ROOT, "examples/shop.toml"), os.path.join(d, "tasks.toml"))
        run = subprocess.Popen([TT, "run", "--dashboard", "127.0.0.1:0"], cwd=d, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            url = run.stdout.readline().strip()
            assert "token=" in url, f"tt printed {url!r} first"
            opts = webdriver.ChromeOptions()
            for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"]:
                opts.add_argument(a)
            opts.binary_location = shutil.which("chromium")
            driver = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
            try:
                driver.get(url)
                done = lambda: all(e.get_attribute("data-status") == "completed"
                                   for e in driver.find_elements(By.CSS_SELECTOR, "#graph [data-task]")) \
                    and len(driver.find_elements(By.CSS_SELECTOR, "#graph [data-task]")) >= 6
                wait("every task completed", done)
                driver.find_element(By.CSS_SELECTOR, '#graph .node[data-task="login"]').click()
                wait("the panel shows login", lambda: driver.find_elements(By.CSS_SELECTOR, '#panel [data-task="login"] [data-attempt]'))
                # The overview (agents) is read a moment after the tasks change.
                wait("no agent is working", lambda: driver.find_elements(By.CSS_SELECTOR, "#agents [data-agent]")
                     and not driver.find_elements(By.CSS_SELECTOR, '#agents [data-state="working"]')
                     and not driver.find_elements(By.CSS_SELECTOR, '#timeline [data-outcome="running"]'))
                driver.save_screenshot(OUT)
            finally:
                driver.quit()
        finally:
            run.terminate()
            run.wait(timeout=30)
            subprocess.run([TT, "down"], cwd=d, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"wrote {OUT}")


main()
