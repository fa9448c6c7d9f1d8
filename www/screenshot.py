#!/usr/bin/env python3
"""Opens a page in headless Chromium (with WebGPU), waits until an expression evaluated in the
page is true, and saves a PNG of it: how the README's picture of the page after training is
taken. Talks to Chromium over --remote-debugging-pipe (the DevTools protocol, JSON messages
ending in a NUL byte, on file descriptors 3 and 4), so it needs nothing beyond Python.

    python3 www/screenshot.py URL OUT.png [--until JS] [--timeout S] [--size WxH]
"""

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time


class DevTools:
    def __init__(self, to_browser, from_browser):
        self.to_browser, self.from_browser, self.next_id, self.buffer = to_browser, from_browser, 0, b""

    def call(self, method, session=None, **params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self.receive()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def receive(self):
        while b"\0" not in self.buffer:
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--until", default="true", help="a JavaScript expression; the picture is taken once it is true")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--size", default="1000x640")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    to_browser_read, to_browser = os.pipe()
    from_browser, from_browser_write = os.pipe()
    profile = tempfile.mkdtemp(prefix="kiln-screenshot-")

    def child_fds():
        # Copies first: a pipe may already sit on 3 or 4, where dup2 would leave it close-on-exec.
        read_end, write_end = os.dup(to_browser_read), os.dup(from_browser_write)
        os.dup2(read_end, 3)
        os.dup2(write_end, 4)

    browser = subprocess.Popen(
        ["chromium", "--headless=new", "--no-sandbox", "--enable-unsafe-webgpu", "--remote-debugging-pipe",
         f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
        preexec_fn=child_fds, close_fds=False,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(to_browser_read)
    os.close(from_browser_write)
    try:
        tools = DevTools(to_browser, from_browser)
        target = tools.call("Target.createTarget", url="about:blank")["targetId"]
        session = tools.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        tools.call("Emulation.setDeviceMetricsOverride", session, width=width, height=height, deviceScaleFactor=1,
                   mobile=False)
        tools.call("Page.navigate", session, url=args.url)
        deadline = time.time() + args.timeout
        while True:
            result = tools.call("Runtime.evaluate", session, expression=f"Boolean({args.until})", returnByValue=True)
            if result.get("result", {}).get("value") is True:
                break
            if time.time() > deadline:
                sys.exit(f"{args.until} did not become true within {args.timeout} s")
            time.sleep(0.5)
        png = tools.call("Page.captureScreenshot", session, format="png")["data"]
        with open(args.out, "wb") as f:
            f.write(base64.b64decode(png))
        print(f"{args.out}: {width}x{height}")
    finally:
        browser.kill()
        browser.wait()


if __name__ == "__main__":
    main()
