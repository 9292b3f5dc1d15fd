"""Screenshots of TensorBoard's pages on a run, taken by headless Chromium: the figures in docs/figures/.

    .venv/bin/python scripts/tensorboard_screenshots.py runs/tiny/version_0 [--out docs/figures]

Starts `tensorboard --logdir <run>` from this Python's environment on 127.0.0.1 (a free port), waits until it
answers, and saves, for each page below, `<out>/tensorboard_<name>.png` (a 256-colour PNG, so they stay small
in git). Needs a Chromium (`apt-get install -y chromium`; or pass `--browser`), driven headless through the
DevTools protocol (the `websockets` package, which vLLM already installs): the page is given `--wait-s` seconds
to load its charts, then on the Custom Scalars page the "Matches" lists of the first charts are opened, since in
TensorBoard's multi-line charts every series of a run has the run's colour and only the list says which marker
is which source. Chromium runs with `--no-sandbox` (containers run it as root).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image

# name -> (URL fragment, window width x height, how many "Matches" legends to open (custom scalars)): what each shows
PAGES = {
    # one chart per statistic, every data source overlaid (triune_callbacks.scalars_layout); the legends of the
    # first chart (reward) and of the first box chart (iou, 3 matches) opened
    "custom_scalars": ("#custom_scalars", (1600, 1750), ("Matches (7)", "Matches (3)")),
    # the stage reports as markdown tables (lit_triune/rl/stage_report.py), one per report
    "stage_reports": ("#text&tagFilter=stage_reports", (1900, 1500), ()),
    # box tasks only: predicted (orange) and ground-truth (blue) boxes, caption with source, reward and IoU
    "images": ("#images&tagFilter=rollout/boxes", (1400, 1100), ()),
}

# Clicks the toggle of the first "Matches (...)" list with each given label (TensorBoard's Polymer elements live
# in shadow roots, which querySelector does not enter: walk them).
_OPEN_LEGENDS = """(labels => {
  const spans = [];
  (function walk(root) {
    for (const el of root.querySelectorAll('span.matches-text')) spans.push(el);
    for (const el of root.querySelectorAll('*')) if (el.shadowRoot) walk(el.shadowRoot);
  })(document);
  let opened = 0;
  for (const label of labels) {
    const span = spans.find(el => el.textContent.trim() === label && !el.dataset.opened);
    const button = span && span.parentElement.querySelector('.toggle-matches-button');
    if (button) { span.dataset.opened = '1'; button.click(); opened += 1; }
  }
  return opened;
})"""


class _Chromium:
    """A headless Chromium page driven over the DevTools protocol (a JSON message per command on a websocket)."""

    def __init__(self, browser: str, size: tuple[int, int]) -> None:
        from websockets.sync.client import connect

        self.profile = tempfile.mkdtemp(prefix="chromium-")
        self.proc = subprocess.Popen([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                      f"--user-data-dir={self.profile}", f"--window-size={size[0]},{size[1]}",
                                      "--remote-debugging-port=0", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = None
        for line in self.proc.stderr:  # "DevTools listening on ws://127.0.0.1:<port>/devtools/browser/<id>"
            m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if m:
                port = m.group(1)
                break
        if port is None:
            raise RuntimeError(f"{browser} exited with {self.proc.wait()} before opening its DevTools port")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(page["webSocketDebuggerUrl"], max_size=None))
        self.last_id = 0
        self.call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1,
                  mobile=False)

    def call(self, method: str, **params: object) -> dict:
        self.last_id += 1
        self.ws.send(json.dumps({"id": self.last_id, "method": method, "params": params}))
        while True:  # events arrive in between: skip them
            msg = json.loads(self.ws.recv(timeout=120))
            if msg.get("id") == self.last_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    def js(self, expression: str) -> object:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def png(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        self._stack.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.profile, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tensorboard exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "data/runs", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1.0)
    raise TimeoutError(f"tensorboard did not answer at {url} within {timeout_s:.0f} s")


def screenshot(browser: str, url: str, size: tuple[int, int], legends: tuple[str, ...], out: Path,
               wait_s: float) -> int:
    """Saves the page at `url` as a 256-colour PNG (TensorBoard's flat UI loses nothing visible; ~4x smaller);
    returns how many legends were opened."""
    page = _Chromium(browser, size)
    try:
        page.call("Page.navigate", url=url)
        time.sleep(wait_s)  # the charts fetch their data after the page has loaded
        opened = int(page.js(f"{_OPEN_LEGENDS}({json.dumps(list(legends))})") or 0) if legends else 0
        time.sleep(2.0 if legends else 0.0)
        image = Image.open(io.BytesIO(page.png())).convert("RGB")
    finally:
        page.close()
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    return opened


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("run", type=Path, help="a run's log directory (holds the events.out.tfevents.* file)")
    p.add_argument("--out", type=Path, default=Path("docs/figures"), help="where the PNGs go (default docs/figures)")
    p.add_argument("--browser", default=shutil.which("chromium") or shutil.which("chromium-browser") or "chromium",
                   help="a Chromium or Chrome executable (default: chromium on PATH)")
    p.add_argument("--wait-s", type=float, default=10.0, help="seconds a page gets to load its charts (default 10)")
    p.add_argument("--pages", nargs="+", choices=sorted(PAGES), default=list(PAGES), help="which screenshots")
    args = p.parse_args(argv)
    if not any(args.run.glob("events.out.tfevents.*")):
        p.error(f"{args.run}: no TensorBoard event file")
    args.out.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    tensorboard = Path(sys.executable).with_name("tensorboard")
    proc = subprocess.Popen([str(tensorboard), "--logdir", str(args.run), "--host", "127.0.0.1", "--port", str(port),
                             "--reload_interval", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until_up(url, proc)
        for name in args.pages:
            fragment, size, legends = PAGES[name]
            out = args.out / f"tensorboard_{name}.png"
            opened = screenshot(args.browser, url + fragment, size, legends, out, args.wait_s)
            print(f"{out}  ({out.stat().st_size // 1024} KiB, {size[0]}x{size[1]}, {opened} legends opened: "
                  f"{url + fragment})")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
