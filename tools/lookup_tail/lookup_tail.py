"""The lookups of `sscard bench lookups` from ONE client, one after another, with each kind's p50, p90, p99:
what a lookup costs with no queue in front of it (docs/SCALE.md, session 17).

    .venv/bin/python tools/lookup_tail/lookup_tail.py postgresql+psycopg://postgres@127.0.0.1:5432/scale_1m \
        var/demo1m.json [EXP_NO_SEALER=1] [EXP_NO_VIEWED=1] [EXP_TIME_WRITER=/tmp/writer.log]

The EXP_ switches are experiments (tools/lookup_tail/sitecustomize.py says what each switches off). The
server is `uvicorn sscard.asgi:application` as the bench starts it; the client is the standard library's
http.client on one kept-alive connection; the first 300 answers are not counted."""

from __future__ import annotations

import http.client
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from sscard.bench.common import Server
from sscard.bench.lookups import _requests, sample
from sscard.config import Settings

HERE = Path(__file__).resolve().parent


def main(url: str, demo_json: str, switches: list[str], seconds: float = 12) -> None:
    report = json.loads(Path(demo_json).read_text(encoding="utf-8"))
    clerk = next(u["api_token"] for u in report["staff"] if u["role"] == "clerk")
    teller = next(u for u in report["staff"] if u["role"] == "teller")
    requests = _requests(sample(url, teller["where"].split("-")[0], 3000, 11), clerk, teller["api_token"])
    workdir = Path(tempfile.mkdtemp(prefix="sscard-lookup-tail-"))
    src = str(Path(__import__("sscard").__file__).resolve().parents[1])
    env = {"PYTHONPATH": f"{HERE}:{src}", **dict(s.split("=", 1) for s in switches)}
    server = Server(url, Settings.from_env().secret_key, workdir, env=env)
    try:
        server.ready()
        conn = http.client.HTTPConnection("127.0.0.1", server.port)
        seen: list[tuple[str, float]] = []
        end, i = time.perf_counter() + seconds, 0
        while time.perf_counter() < end:
            kind, path, token = requests[i % len(requests)]
            i += 1
            start = time.perf_counter()
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            answer = conn.getresponse()
            answer.read()
            if answer.status != 200:
                raise SystemExit(f"{kind}: {answer.status}")
            seen.append((kind, (time.perf_counter() - start) * 1000))
        seen = seen[300:]
        for kind in ("all", "citizen_id", "card_number", "pan"):
            ms = sorted(m for k, m in seen if kind in ("all", k))
            print(f"{kind:12s} n {len(ms):6d}  p50 {ms[len(ms) // 2]:.2f}  p90 {ms[int(len(ms) * .9)]:.2f}  "
                  f"p99 {ms[int(len(ms) * .99)]:.2f} ms")
    finally:
        server.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
