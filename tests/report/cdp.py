"""A small Chrome DevTools Protocol client for the browser tests (headless Chromium + websocket-client).

``with Chromium(binary, tmp) as browser: page = browser.open(url)`` starts a fresh headless Chromium,
opens ``url`` and collects console errors and uncaught exceptions; ``page.eval(js)`` evaluates an
expression, ``page.click(selector)`` dispatches a real click, ``page.screenshot(path)`` captures the
page, downloads go to ``browser.downloads``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
]


def find_chromium() -> str | None:
    """``$BIOREP_CHROMIUM``, else chromium / google-chrome on the PATH, else ``None``."""
    env = os.environ.get("BIOREP_CHROMIUM")
    if env and Path(env).is_file():
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


class _Socket:
    def __init__(self, url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def pump(self, seconds: float) -> None:
        """Read events for ``seconds``."""
        import websocket

        end = time.time() + seconds
        self.ws.settimeout(0.1)
        try:
            while time.time() < end:
                try:
                    msg = json.loads(self.ws.recv())
                except websocket.WebSocketTimeoutException:
                    continue
                if "method" in msg:
                    self.events.append(msg)
        finally:
            self.ws.settimeout(60)

    def close(self) -> None:
        self.ws.close()


class Page:
    """One open tab."""

    def __init__(self, sock: _Socket) -> None:
        self.sock = sock

    def eval(self, expression: str) -> Any:
        res = self.sock.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression}: {res['exceptionDetails'].get('exception', res['exceptionDetails'])}")
        return res["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0) -> Any:
        end = time.time() + timeout
        while time.time() < end:
            value = self.eval(expression)
            if value:
                return value
            self.sock.pump(0.1)
        raise TimeoutError(f"{expression} stayed falsy for {timeout} s")

    def click(self, selector: str) -> None:
        """A real mouse click (press + release) at the centre of ``selector``."""
        box = self.eval(
            f"(function(){{var e=document.querySelector({json.dumps(selector)});"
            "e.scrollIntoView({block: 'center', inline: 'center'}); var r=e.getBoundingClientRect();"
            "return [r.left + r.width / 2, r.top + r.height / 2];})()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.sock.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def errors(self) -> list[str]:
        """Console errors and uncaught exceptions seen so far."""
        self.sock.pump(0.3)
        out = []
        for ev in self.sock.events:
            m, p = ev["method"], ev.get("params", {})
            if m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append(f"{d.get('text', '')} {d.get('exception', {}).get('description', '')} ({d.get('url', '')})")
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(p["entry"].get("text", ""))
        return out

    def screenshot(self, path: Path, width: int, height: int, full: bool = False) -> Path:
        self.sock.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                       mobile=False)
        self.sock.pump(0.3)
        res = self.sock.call("Page.captureScreenshot", format="png", captureBeyondViewport=full)
        path.write_bytes(base64.b64decode(res["data"]))
        return path


class Chromium:
    """A fresh headless Chromium with its own profile; downloads land in ``self.downloads``."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary, self.workdir = binary, Path(workdir)
        self.profile = self.workdir / f"profile-{os.getpid()}-{time.time_ns()}"
        self.downloads = self.workdir / "downloads"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._sockets: list[_Socket] = []

    def __enter__(self) -> Chromium:
        self.downloads.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [self.binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        port_file = self.profile / "DevToolsActivePort"
        end = time.time() + 60
        while not port_file.is_file() or not port_file.read_text().strip():
            if time.time() > end or self.proc.poll() is not None:
                raise RuntimeError("Chromium did not start (no DevToolsActivePort)")
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])
        version = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/version", timeout=30).read())
        browser = _Socket(version["webSocketDebuggerUrl"])
        self._sockets.append(browser)
        browser.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(self.downloads))
        return self

    def open(self, url: str) -> Page:
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=30).read())
        page = next(t for t in targets if t.get("type") == "page")
        sock = _Socket(page["webSocketDebuggerUrl"])
        self._sockets.append(sock)
        for domain in ("Runtime", "Log", "Page"):
            sock.call(f"{domain}.enable")
        sock.call("Page.navigate", url=url)
        p = Page(sock)
        p.wait_for("document.readyState === 'complete'")
        return p

    def wait_download(self, name: str, timeout: float = 30.0) -> Path:
        target = self.downloads / name
        end = time.time() + timeout
        while time.time() < end:
            if target.is_file() and not list(self.downloads.glob("*.crdownload")):
                return target
            time.sleep(0.1)
        raise TimeoutError(f"no download {name} in {self.downloads} (there: {os.listdir(self.downloads)})")

    def __exit__(self, *exc: object) -> None:
        for s in self._sockets:
            try:
                s.close()
            except Exception:
                pass
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)
