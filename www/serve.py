#!/usr/bin/env python3
"""Serves Kiln's page on 127.0.0.1 (a secure context, so the page has WebGPU): the page from
www/, the Fashion-MNIST files under /data/, the golden cases under /golden/ (their names at
/golden/cases.json), and takes what a test page sends back (PUT /results/NAME) into a results
folder."""

import argparse
import functools
import http.server
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


class Handler(http.server.SimpleHTTPRequestHandler):
    mounts = {}
    results = None

    def do_GET(self):
        if self.path.split("?", 1)[0] == "/golden/cases.json":
            folder = os.path.join(self.mounts["/golden/"], "cases")
            names = sorted(n for n in os.listdir(folder) if n.endswith(".safetensors"))
            body = json.dumps(names).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def translate_path(self, path):
        path = path.split("?", 1)[0].split("#", 1)[0]
        for prefix, folder in self.mounts.items():
            if path.startswith(prefix):
                rest = os.path.normpath("/" + path[len(prefix):]).lstrip("/")
                return os.path.join(folder, rest)
        return super().translate_path(path)

    def do_PUT(self):
        match = re.fullmatch(r"/results/([A-Za-z0-9._-]+)", self.path)
        length = int(self.headers.get("Content-Length", "0"))
        if not match or self.results is None or length > 256 << 20:
            self.send_error(400, "PUT /results/NAME (letters, digits, . _ -), at most 256 MiB, with --results")
            return
        body = self.rfile.read(length)
        os.makedirs(self.results, exist_ok=True)
        path = os.path.join(self.results, match.group(1))
        with open(path + ".part", "wb") as f:
            f.write(body)
        os.replace(path + ".part", path)
        self.send_response(204)
        self.end_headers()

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, *args):
        if os.environ.get("KILN_SERVE_LOG"):
            super().log_message(*args)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--golden", default=os.path.join(HERE, "..", "..", "shared", "golden"))
    parser.add_argument("--results", help="folder for what a test page PUTs under /results/")
    args = parser.parse_args()
    if not os.path.isfile(os.path.join(HERE, "pkg", "kiln_web.js")):
        sys.exit(f"{HERE}/pkg/kiln_web.js is missing: build the page first (make web)")
    Handler.mounts = {"/data/": os.path.abspath(args.data), "/golden/": os.path.abspath(args.golden)}
    Handler.results = args.results and os.path.abspath(args.results)
    Handler.extensions_map = {**Handler.extensions_map, ".wasm": "application/wasm", ".js": "text/javascript"}
    handler = functools.partial(Handler, directory=HERE)
    with http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler) as server:
        print(f"Kiln's page: http://127.0.0.1:{server.server_address[1]}/", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
