"""What the browser checks share: headless Chromium over WebDriver, and
waiting for a condition with a deadline."""

import shutil
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def chrome():
    """Headless Chromium, 1400×1000."""
    opts = webdriver.ChromeOptions()
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000"]:
        opts.add_argument(a)
    # Both named, so selenium never looks for (or downloads) others.
    opts.binary_location = shutil.which("chromium")
    return webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))


def wait(what, fn, within):
    """`fn()` once it is truthy; exits with `what` after `within` seconds."""
    start = time.monotonic()
    while True:
        try:
            value = fn()
        except Exception:  # an element redrawn under us: ask again
            value = None
        if value:
            return value
        if time.monotonic() - start > within:
            raise SystemExit(f"timed out after {within}s waiting until {what}")
        time.sleep(0.02)
