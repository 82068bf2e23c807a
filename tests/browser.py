"""Headless Chromium (Debian's package) for the audit report's tests, driven over the DevTools
protocol on a pipe (``--remote-debugging-pipe``: no port, no websocket library).

A ``Page`` opens one file at a viewport width (emulated: headless windows are never narrower than
500 px), with JavaScript on or off (``Emulation.setScriptExecutionDisabled``: the page's own script
does not run), and answers: the DOM as the reader gets it, expressions evaluated in the page
(DevTools evaluation is not subject to the page's Content-Security-Policy, which stays in force
for the page itself), screenshots (kept under ``test-artifacts/``, gitignored) and axe-core's
violations.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_ROOT / "test-artifacts" / "audit-report"
AXE = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)
TIMEOUT_S = 120.0


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is missing: run scripts/ensure-chromium.sh (make test does)")
    return found


class Page:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, path: Path, *, width: int, javascript: bool = True, height: int = 900) -> None:
        self.path, self.width, self.javascript, self.height = path, width, javascript, height
        self._next = 0
        self._buffer = b""
        self._session = ""

    def __enter__(self) -> Page:
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        self._profile = tempfile.TemporaryDirectory(prefix="clguard-chromium-")

        def pipes_at_3_and_4() -> None:  # the protocol's fixed descriptors, in the child only
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser_r, from_browser_w)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self._process = subprocess.Popen(
            [chromium(), *FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"],
            pass_fds=(3, 4),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=pipes_at_3_and_4,  # noqa: PLW1509 - two dup2 calls, no lock taken
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._write, self._read = to_browser_w, from_browser_r
        target = self._call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self._call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self._call("Page.enable")
        self._call(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=self.height,
            deviceScaleFactor=1,
            mobile=False,
        )
        if not self.javascript:
            self._call("Emulation.setScriptExecutionDisabled", value=True)
        self._call("Page.navigate", url=self.path.as_uri())
        self._wait_event("Page.loadEventFired")
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        with contextlib.suppress(OSError, AssertionError):
            self._call("Browser.close", session=False)
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._write)
        os.close(self._read)
        self._profile.cleanup()

    # --- the protocol ----------------------------------------------------------------------------

    def _send(self, method: str, params: dict[str, Any], *, session: bool = True) -> int:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session and self._session:
            message["sessionId"] = self._session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        return self._next

    def _receive(self) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT_S
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise AssertionError("Chromium did not answer in time")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise AssertionError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message

    def _call(self, method: str, *, session: bool = True, **params: Any) -> dict[str, Any]:
        wanted = self._send(method, params, session=session)
        while True:
            message = self._receive()
            if message.get("id") == wanted:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def _wait_event(self, method: str) -> None:
        while self._receive().get("method") != method:
            pass

    # --- what the tests ask ----------------------------------------------------------------------

    def evaluate(self, expression: str, *, wait: bool = False) -> Any:
        """The value of a JavaScript expression in the page (a promise awaited when ``wait``)."""
        result = self._call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=wait)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def dom(self) -> str:
        value: str = self.evaluate("document.documentElement.outerHTML")
        return value

    def layout(self) -> dict[str, int]:
        value: dict[str, int] = self.evaluate(
            "({scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,"
            " bodyScrollWidth: document.body.scrollWidth})"
        )
        return value

    def screenshot(self, name: str) -> Path:
        """The full page as PNG under test-artifacts/audit-report/."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        target = ARTIFACTS / f"{name}.png"
        data = self._call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        target.write_bytes(base64.b64decode(data))
        return target

    def axe_violations(self) -> list[dict[str, Any]]:
        """axe-core's violations (id, impact, help, first nodes). With JavaScript off the page's own
        script does not run; axe is evaluated by DevTools all the same."""
        if not AXE.exists():
            pytest.fail("axe-core is missing: run `npm ci` (make test does, from package-lock.json)")
        if not self.javascript:
            self._call("Emulation.setScriptExecutionDisabled", value=False)
        self.evaluate(AXE.read_text() + ";0")
        value: list[dict[str, Any]] = self.evaluate(
            "axe.run(document, {resultTypes: ['violations']}).then(function (r) {"
            " return r.violations.map(function (v) { return {id: v.id, impact: v.impact, help: v.help,"
            " nodes: v.nodes.slice(0, 5).map(function (n) { return n.html; })}; }); })",
            wait=True,
        )
        return value
