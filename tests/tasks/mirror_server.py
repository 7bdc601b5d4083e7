"""A local HTTP mirror for the fetch tests: ``python mirror_server.py ROOT [--cut-after N]``.

Serves the files under ROOT (laid out like raw.githubusercontent.com) with HTTP Range support,
writes its port to ROOT/../port once listening and one line per GET (path and Range header) to
ROOT/../requests.log. With ``--cut-after N`` it announces the whole file but sends only N bytes
of the first body, then dies: a server that goes away in the middle of a file.
"""

from __future__ import annotations

import argparse
import http.server
import os
import re
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("--cut-after", type=int, default=None)
    args = parser.parse_args()
    root = Path(args.root).resolve()
    log = root.parent / "requests.log"

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            with log.open("a") as fh:
                fh.write(f"{self.path} {rng}\n")
            path = root / self.path.lstrip("/")
            if not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", rng or "")
            if match:
                start = int(match.group(1))
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            if args.cut_after is not None:
                self.wfile.write(data[start : start + args.cut_after])
                self.wfile.flush()
                os._exit(0)  # the server dies mid-file
            self.wfile.write(data[start:])

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    (root.parent / "port.tmp").write_text(str(server.server_address[1]))
    os.replace(root.parent / "port.tmp", root.parent / "port")  # the tests wait for it
    server.serve_forever()


if __name__ == "__main__":
    main()
