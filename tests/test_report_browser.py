"""The HTML report in a real headless Chromium: it loads without console errors, fetches
nothing, renders the math and shows the expected rows. A screenshot is saved under
tests/artifacts/.

Chromium comes from the system packages (`make browser-test` installs it). Without it these
tests skip, unless MATGRAD_REQUIRE_BROWSER=1 (as `make browser-test` sets) turns that into a
failure. The browser is driven over the DevTools protocol on a pipe (--remote-debugging-pipe),
so no port is opened and no client library is needed.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from reportdata import sample_report
from typer.testing import CliRunner

from matgrad.cli import app
from matgrad.report import html

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("MATGRAD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)

if not HAVE_CHROMIUM and os.environ.get("MATGRAD_REQUIRE_BROWSER") == "1":
    raise RuntimeError(f"MATGRAD_REQUIRE_BROWSER=1 but there is no Chromium at {CHROMIUM}")
pytestmark = pytest.mark.skipif(
    not HAVE_CHROMIUM, reason="no Chromium (apt-get install chromium, or make browser-test)"
)

TIMEOUT = 60.0


class Browser:
    """A headless Chromium and one page, spoken to over the DevTools pipe (fds 3 and 4)."""

    def __init__(self, profile: Path) -> None:
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()
        # Move the child's ends above 4, so that placing them on 3 and 4 cannot clobber either.
        child_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD_CLOEXEC, 10)
        for fd in (to_chrome_r, from_chrome_w):
            os.close(fd)

        def place_fds() -> None:
            os.dup2(child_r, 3)
            os.dup2(child_w, 4)

        args = [
            CHROMIUM,
            "--headless",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--mute-audio",
            "about:blank",
        ]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self.proc = subprocess.Popen(
            args,
            preexec_fn=place_fds,
            close_fds=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(child_r)
        os.close(child_w)
        self.out = os.fdopen(to_chrome_w, "wb", buffering=0)
        self.inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self.next_id = 0
        threading.Thread(target=self._read, args=(from_chrome_r,), daemon=True).start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable", session=True)

    def _read(self, fd: int) -> None:
        buf = b""
        with os.fdopen(fd, "rb", buffering=0) as src:
            while chunk := src.read(65536):
                buf += chunk
                *messages, buf = buf.split(b"\0")
                for m in messages:
                    self.inbox.put(json.loads(m))
        self.inbox.put(None)

    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        self.out.write(json.dumps(msg).encode() + b"\0")
        while True:
            reply = self.inbox.get(timeout=TIMEOUT)
            if reply is None:
                raise RuntimeError("Chromium closed the DevTools pipe")
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        for e in self.events:
            if e.get("method") == method:
                return e
        while True:
            e = self.inbox.get(timeout=TIMEOUT)
            if e is None:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self.events.append(e)
            if e.get("method") == method:
                return e

    def open(self, path: Path) -> None:
        self.events.clear()
        self.call("Page.navigate", session=True, url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")
        self.js("new Promise(r => requestAnimationFrame(() => r(1)))")  # one frame painted

    def js(self, expression: str) -> Any:
        r = self.call(
            "Runtime.evaluate",
            session=True,
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions, and browser log errors (blocked or failed
        loads, CSP violations) since the page was opened."""
        self.call("Runtime.evaluate", session=True, expression="0")  # flush pending events
        out = []
        for e in self.events:
            method, p = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value")) for a in p.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                out.append("exception: " + p["exceptionDetails"].get("text", ""))
            elif method == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f"log ({p['entry'].get('source')}): {p['entry']['text']}")
        return out

    def _viewport(self, width: int, height: int) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def screenshot(self, target: Path, width: int = 1280) -> None:
        self._viewport(width, 600)  # lay the page out at this width, then fit its height
        height = self.js("Math.ceil(document.documentElement.getBoundingClientRect().height)")
        self._viewport(width, min(int(height) + 40, 8000))
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.out.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


ROWS_JS = """JSON.stringify(Array.from(document.querySelectorAll('#claims tbody tr')).map(
  tr => [tr.dataset.identity, tr.dataset.claim || null, tr.className,
         tr.querySelector('.badge').textContent]))"""


def test_report_of_a_real_run_in_a_browser(browser: Browser, tmp_path: Path) -> None:
    page, data = tmp_path / "report.html", tmp_path / "report.json"
    seed = str(ROOT / "identities" / "seed.yaml")
    r = CliRunner().invoke(app, ["check", seed, "-qq", "--report", str(page),
                                 "--report", str(data)])
    assert r.exit_code == 0, r.output
    browser.open(page)
    assert browser.problems() == []
    rows = json.loads(browser.js(ROWS_JS))
    results = json.loads(data.read_text())["results"]
    expected = [
        [res["id"], f"{c['kind']} {c['var']}", res["status"],
         {"passed": "PASS", "xfailed": "XFAIL"}[res["status"]]]
        for res in results
        for c in res["claims"]
    ]
    assert rows == expected
    # the math is laid out as MathML (not left as raw text), one block per identity with latex
    assert browser.js("document.querySelectorAll('.math > math').length") == sum(
        1 for res in results if res["latex"]
    )
    assert browser.js("document.querySelector('.math > math mfrac').getBoundingClientRect()"
                      ".width") > 0
    # one plot per claim with numbers, and the overview
    assert browser.js("document.querySelectorAll('#claims svg.plot').length") == len(expected) - 1
    assert browser.js("document.querySelectorAll('svg.overview rect').length") > 0
    # the status colours are applied
    assert browser.js(
        "getComputedStyle(document.querySelector('.badge.passed')).backgroundColor"
    ) == "rgb(26, 127, 55)"
    browser.screenshot(ARTIFACTS / "report-seed.png")
    assert (ARTIFACTS / "report-seed.png").stat().st_size > 10_000


def test_hostile_text_stays_text_in_a_browser(browser: Browser, tmp_path: Path) -> None:
    page = tmp_path / "sample.html"
    page.write_text(html.render(sample_report()), encoding="utf-8")
    browser.open(page)
    assert browser.problems() == []
    assert browser.js("document.querySelectorAll('script, img, iframe, object, embed').length") == 0
    assert browser.js("document.querySelectorAll('a[href^=\"javascript\"]').length") == 0
    statuses = json.loads(browser.js(ROWS_JS))
    assert [s[3] for s in statuses] == [
        "PASS", "PASS", "FAIL", "XFAIL", "XPASS", "ERROR", "ERROR", "FAIL", "ERROR"
    ]
    title = browser.js("document.querySelector('tr[data-claim=\"grad A\"] td:nth-child(2)')"
                       ".textContent")
    assert title.startswith('x <script>alert("&amp;")</script> | pipe')
    assert "\\x1b[31mred\\x07bell\\x00nul\\u202eevil" in title
    browser.screenshot(ARTIFACTS / "report-sample.png")


def test_the_browser_check_sees_errors(browser: Browser, tmp_path: Path) -> None:
    # Meta-test: the checks above would notice a console error, and a script or a fetch that
    # the report's Content-Security-Policy blocks.
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><title>x</title><script>console.error('boom')</script>")
    browser.open(page)
    assert browser.problems() == ["console: boom"]
    page.write_text(
        f'<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="{html.CSP}">'
        "<title>x</title><script>document.title = 'ran'</script>"
        '<img src="https://example.invalid/x.png">'
    )
    browser.open(page)
    problems = browser.problems()
    assert browser.js("document.title") == "x"  # the script was blocked
    assert len(problems) == 2 and all("Content Security Policy" in p for p in problems), problems


MIXED = """\
identities:
  - id: attention-scores
    title: A bilinear score whose second gradient is written wrong
    dims: {n: 3}
    vars:
      Q: {shape: [n, n]}
      K: {shape: [n, n]}
    f: tr(Q @ K.T) + sum(sqrt(exp(Q)) / 2)
    grad:
      Q: K + sqrt(exp(Q)) / 4
      K: Q.T
"""

PAGE_JS = """JSON.stringify({
  scroll: document.documentElement.scrollWidth, view: window.innerWidth,
  maths: document.querySelectorAll('.formulas math').length,
  fracs: Array.from(document.querySelectorAll('.formulas mfrac')).map(
    m => m.getBoundingClientRect().width),
  chart: document.querySelector('svg.overview').getBoundingClientRect().right,
  titleWidth: Math.max(0, ...Array.from(document.querySelectorAll('#claims td:nth-child(2)'))
    .map(td => td.getBoundingClientRect().width)),
})"""


@pytest.mark.parametrize("width", [1400, 420])
def test_formulas_badges_and_no_sideways_scroll(
    browser: Browser, tmp_path: Path, width: int
) -> None:
    source = tmp_path / "mixed.yaml"
    source.write_text(MIXED, encoding="utf-8")
    page = tmp_path / "report.html"
    seed = str(ROOT / "identities" / "seed.yaml")
    r = CliRunner().invoke(app, ["check", seed, str(source), "-qq", "--report", str(page)])
    assert r.exit_code == 1, r.output
    browser._viewport(width, 900)
    browser.open(page)
    assert browser.problems() == []
    rows = json.loads(browser.js(ROWS_JS))
    mixed = [row for row in rows if row[0] == "attention-scores"]
    # each claim's badge is its own verdict: the right grad Q passes beside the wrong grad K
    assert [(row[1], row[3]) for row in mixed] == [("grad Q", "PASS"), ("grad K", "FAIL")]
    got = json.loads(browser.js(PAGE_JS))
    # f and every claim of every identity as MathML laid out by the browser (no latex: needed)
    results = json.loads(
        CliRunner().invoke(app, ["check", seed, str(source), "--format", "json"]).stdout
    )["results"]
    assert got["maths"] == sum(1 + len(x["claims"]) for x in results)  # f and each claim
    assert got["fracs"] and all(w > 0 for w in got["fracs"])
    # the page never scrolls sideways; the chart fits the viewport
    assert got["scroll"] <= got["view"] == width
    assert got["chart"] <= width
    # the title column is hidden on a phone rather than wrapped a letter a line
    assert got["titleWidth"] == 0 if width < 700 else got["titleWidth"] > 100
    browser.screenshot(ARTIFACTS / f"report-mixed-{width}.png", width=width)
