"""The browser side of benches/dashboard.rs: headless Chromium (selenium)
loads the dashboard of a big town, then watches it while events arrive.

Usage: dashboard.py URL TASKS — URL as `tt dashboard` printed it, TASKS
how many tasks the town has. Prints `loaded {json}` once every task is
on the page, then waits for `go SECONDS` on stdin, watches that long and
prints `result {json}`. Run by benches/dashboard.rs.

What it measures, in the page: the time from navigation to the first
drawing of the whole town (`tt.renderedAt`); for each event of the phase,
the time from the event (its `at`, Redis' clock) to the change of its
task's `data-status` (a MutationObserver on `#tasks`, the browser's clock:
the same machine); main-thread long tasks (PerformanceObserver `longtask`)
and the gaps between animation frames; the JS heap and the DOM size.
"""

import json
import shutil
import sys
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

URL, TASKS = sys.argv[1], int(sys.argv[2])
BASE, TOKEN = URL.split("/?token=")

# Installed before the page's own script runs; in a function of its own,
# so its names do not clash with the page's.
PROBE = """(() => {
window.__bench = { mut: [], long: [], gaps: [], phase: false };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) __bench.long.push([performance.timeOrigin + e.startTime, e.duration]);
}).observe({ type: "longtask", buffered: true });
new MutationObserver((records) => {
  const now = Date.now();
  for (const m of records) {
    const t = m.target;
    if (t.parentNode && t.parentNode.id === "tasks") __bench.mut.push([t.dataset.task, t.dataset.status, now]);
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-status"] });
let last = null;
const frame = (ts) => {
  if (last !== null && __bench.phase) __bench.gaps.push(ts - last);
  last = ts;
  requestAnimationFrame(frame);
};
requestAnimationFrame(frame);
})();
"""

# The status an event's task has on the page once it is applied, and the
# order statuses come in (a later one also counts: a frame may apply two
# events of a task at once).
STATUS_OF = {"dispatched": "assigned", "started": "running", "completed": "completed", "failed": "failed"}
RANK = {"pending": 0, "assigned": 1, "running": 2, "completed": 3, "failed": 3, "cancelled": 3}


def wait(what, fn, within):
    start = time.monotonic()
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() - start > within:
            raise SystemExit(f"timed out after {within}s waiting until {what}")
        time.sleep(0.02)


def heap(driver):
    try:
        return driver.execute_cdp_cmd("Runtime.getHeapUsage", {})["usedSize"]
    except Exception:
        return driver.execute_script("return performance.memory ? performance.memory.usedJSHeapSize : 0")


def dom_nodes(driver):
    return driver.execute_script("return document.getElementsByTagName('*').length")


def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, round((len(v) - 1) * q))]


def main():
    opts = webdriver.ChromeOptions()
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1000"]:
        opts.add_argument(a)
    opts.binary_location = shutil.which("chromium")
    driver = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
    try:
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": PROBE})
        driver.get(URL)
        wait("the whole town is drawn", lambda: driver.execute_script(
            "return window.tt && tt.renderedAt !== null && document.querySelectorAll('#tasks [data-task]').length"
        ) == TASKS, within=120)
        rendered = driver.execute_script("return tt.renderedAt")
        loaded = {"rendered_ms": rendered, "heap": heap(driver), "dom": dom_nodes(driver),
                  "shown": driver.execute_script("return document.querySelectorAll('#graph [data-task]').length")}
        print("loaded", json.dumps(loaded), flush=True)

        seconds = float(sys.stdin.readline().split()[1])
        driver.execute_script("__bench.mut = []; __bench.phase = true;")
        t0 = int(time.time() * 1000)
        time.sleep(seconds)
        t1 = int(time.time() * 1000)
        driver.execute_script("__bench.phase = false;")
        time.sleep(2)  # what arrived by t1 is applied by now
        probe = driver.execute_script("return __bench")
        req = urllib.request.Request(BASE + "/api/history?limit=10000", headers={"X-TT-Token": TOKEN})
        events = json.load(urllib.request.urlopen(req))["events"]

        changes = {}
        for task, status, at in probe["mut"]:
            changes.setdefault(task, []).append((at, status))
        latencies, missing = [], 0
        counted = [e for e in events if t0 <= e["at"] < t1]
        for e in counted:
            want = STATUS_OF.get(e["kind"])
            if want is None:
                continue
            seen = [at for at, s in changes.get(e["task"], []) if at >= e["at"] - 5 and RANK.get(s, 0) >= RANK[want]]
            if seen:
                latencies.append(max(0, seen[0] - e["at"]))
            else:
                missing += 1
        longs = [d for start, d in probe["long"] if t0 <= start <= t1]
        result = {
            "events": len(counted),
            "events_per_s": len(counted) / ((t1 - t0) / 1000),
            "measured": len(latencies),
            "missing": missing,
            "p50_ms": pct(latencies, 0.5),
            "p99_ms": pct(latencies, 0.99),
            "max_ms": max(latencies) if latencies else None,
            "long_tasks": len(longs),
            "longest_task_ms": max(longs) if longs else 0,
            "frame_gap_p99_ms": pct(probe["gaps"], 0.99),
            "frame_gap_max_ms": max(probe["gaps"]) if probe["gaps"] else None,
            "heap": heap(driver),
            "dom": dom_nodes(driver),
        }
        print("result", json.dumps(result), flush=True)
    finally:
        driver.quit()


main()
