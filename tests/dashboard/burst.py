"""The page under a burst of events (tests/dashboard/burst.rs).

Usage: burst.py URL TASKS GROUPS — URL as `tt dashboard` printed it,
TASKS how many tasks the town has, GROUPS the comma-separated groups the
test changes. Prints `loaded` once every task is on the page, then reads
`check {id: status, …}` (what `tt tasks --json` says after the burst)
from stdin and waits until the page agrees on every task. The elements of
the changed groups are marked before the burst: the same elements must
show the new statuses (patched, not the graph drawn anew).
Exits non-zero with what failed.
"""

import json
import sys
import time

from chrome import chrome, wait

URL, TASKS, GROUPS = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
DEADLINE = 10.0

STATUSES = "return [...document.querySelectorAll('#tasks [data-task]')].map((e) => [e.dataset.task, e.dataset.status])"
MARK = """
for (const id of arguments[0]) document.querySelector(`#graph [data-task="${id}"]`).__mark = id;
"""
MARKED = """
return arguments[0].filter((id) => {
  const el = document.querySelector(`#graph [data-task="${id}"]`);
  return !el || el.__mark !== id;
});
"""
GRAPH = "return arguments[0].map((id) => document.querySelector(`#graph [data-task=\"${id}\"]`).dataset.status)"


def main():
    driver = chrome()
    try:
        driver.get(URL)
        wait("every task is on the page", lambda: len(driver.execute_script(STATUSES)) == TASKS, within=30)
        wait("the groups are drawn", lambda: driver.execute_script(
            "return arguments[0].every((id) => document.querySelector(`#graph [data-task=\"${id}\"]`))", GROUPS), within=10)
        driver.execute_script(MARK, GROUPS)
        print("loaded", flush=True)

        expected = json.loads(sys.stdin.readline().removeprefix("check "))
        started = time.monotonic()

        def wrong():
            shown = dict(driver.execute_script(STATUSES))
            return {t: (shown.get(t), s) for t, s in expected.items() if shown.get(t) != s}

        try:
            wait("every task shows its status", lambda: not wrong(), within=DEADLINE)
        except SystemExit:
            bad = wrong()
            raise SystemExit(f"{len(bad)} tasks show the wrong status after {DEADLINE}s, e.g. (shown, right): "
                             f"{dict(list(bad.items())[:10])}")
        print(f"every task right {time.monotonic() - started:.3f}s after the burst")
        redrawn = driver.execute_script(MARKED, GROUPS)
        assert not redrawn, f"the graph was drawn anew, not patched: {redrawn}"
        shown = driver.execute_script(GRAPH, GROUPS)
        want = [expected[g] for g in GROUPS]
        assert shown == want, f"the group boxes show {shown}, not {want}"
    finally:
        driver.quit()
    print("all burst checks passed")


main()
