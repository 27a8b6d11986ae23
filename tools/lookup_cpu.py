"""CPU per staff lookup through the whole ASGI app, in-process, one caller (docs/SCALE.md, branch `reads`).

    .venv/bin/python tools/lookup_cpu.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/scale_1m \\
        --demo-json var/demo1m.json [-n 300] [--seed 21]

For each kind (citizen ID, card number, PAN statement) it answers `n` GET requests through the app (no
network, no HTTP client), then prints the process's CPU per lookup (every thread: the event loop, the
reader threads, the group-commit writer, the sealer) and that of the database's PostgreSQL backends (read
from /proc: run it on the database's host), and the wall time. The secret key must be the one the demo's
tokens were issued under (SSCARD_VAR_DIR or ./var). It writes `viewed` audit records: a demo database only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path


def _backends_cpu(url: str) -> float:
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    name = dsn.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(dsn, autocommit=True) as conn:
        pids = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,))]
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--demo-json", type=Path, required=True)
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()
    os.environ["SSCARD_DATABASE_URL"] = args.database_url
    from sscard.bench.lookups import sample
    from sscard.composition import create_app

    api = create_app()
    report = json.loads(args.demo_json.read_text(encoding="utf-8"))
    clerk = next(u["api_token"] for u in report["staff"] if u["role"] == "clerk")
    teller = next(u for u in report["staff"] if u["role"] == "teller")
    people = sample(args.database_url, teller["where"].split("-")[0], args.n + 30, args.seed)

    async def get(path: str, token: str) -> None:
        path, _, query = path.partition("?")
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
                 "root_path": "", "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())],
                 "client": ("127.0.0.1", 1), "server": ("bench", 80)}
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await api(scope, receive, send)
        if sent[0]["status"] != 200:
            raise RuntimeError(f"{path}: {sent[0]['status']} {sent[1:2]}")

    kinds = {"citizen_id": lambda p: (f"/api/v1/persons?citizen_id={p[0]}", clerk),
             "card_number": lambda p: (f"/api/v1/cards/{p[1]}", clerk),
             "pan": lambda p: (f"/api/v1/bank-accounts/{p[2]}/statement?limit=5", teller["api_token"])}

    async def run() -> None:
        for kind, request in kinds.items():
            for p in people[:30]:  # warm: connections, prepared statements, caches
                await get(*request(p))
            pg0, cpu0, wall0 = _backends_cpu(args.database_url), time.process_time(), time.perf_counter()
            for p in people[30:]:
                await get(*request(p))
            n = len(people) - 30
            print(f"{kind:12} server CPU {(time.process_time() - cpu0) / n * 1000:.2f} ms, "
                  f"postgres CPU {(_backends_cpu(args.database_url) - pg0) / n * 1000:.2f} ms, "
                  f"wall {(time.perf_counter() - wall0) / n * 1000:.2f} ms per lookup")

    try:
        asyncio.run(run())
    finally:
        api.state.sscard.close()


if __name__ == "__main__":
    main()
