"""What PostgreSQL spends on each statement of the group-commit writer's batches (issue 14, workload (b)).

    .venv/bin/python tools/batch_statements.py [--seconds 4] [--clients 8] \\
        [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test] [--log /var/log/postgresql/postgresql-15-main.log]

Builds (b)'s scratch city (20 cardholders, `bench.ledger.LedgerRig`, no HTTP server), turns on
`log_min_duration_statement = 0` for that scratch database only, drops the app's connections so that new ones
take it, runs (b)'s transfers for `--seconds`, and then reads the server's log (run it on the database's host,
as a user who may read that file) for the scratch database's lines: each statement's parse, bind and execute
durations, summed over the run and per batch, largest first. The server's own timing of each message: no
sampling, no Python in it. Logging every statement costs the run some of its rate; compare the shares, not
the rate. The scratch database is dropped at the end.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import time

import psycopg


def main() -> None:
    from sscard.bench.ledger import LedgerRig
    from sscard.services import batching

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--log", default="/var/log/postgresql/postgresql-15-main.log")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    admin = args.pg_url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + "/postgres"

    rig = LedgerRig("postgres", args.pg_url, 20, args.clients, "full", print, http=False)
    name = rig.scratch.name
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {name} SET log_min_duration_statement = 0")
        rig.app.db.engine.dispose()  # new connections take the setting: the pool's and the writer's
        batching.batcher(rig.app)._close_connections()
        start = os.path.getsize(args.log)
        out = rig.service_transfers(args.clients, args.seconds)
        time.sleep(0.5)  # the server's last lines
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {name} RESET log_min_duration_statement")
    finally:
        rig.close()
    batches = max(1, out["batching"]["batches"])
    print(f"(b) {out['tps']:.0f} transfers/s, p50 {out['p50_ms']:.2f} ms, p99 {out['p99_ms']:.2f} ms; "
          f"{batches} batches of {out['batching']['mean_batch']} on average; writer CPU "
          f"{out['batching']['writer_cpu_us_per_request']} us a transfer")
    spent: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    line_of = re.compile(r"duration: ([0-9.]+) ms\s+(statement|execute|parse|bind)[^:]*: (.*)")
    with open(args.log, errors="replace") as log:
        log.seek(start)
        for line in log:
            found = line_of.search(line) if f"@{name} " in line else None
            if found:
                spent[(found.group(2), found.group(3)[:80])].append(float(found.group(1)))
    total = sum(sum(v) for v in spent.values())
    print(f"PostgreSQL's own time: {total / batches:.3f} ms a batch ({total:.0f} ms in all)")
    for (step, sql), times in sorted(spent.items(), key=lambda kv: -sum(kv[1]))[:args.top]:
        times.sort()
        print(f"{sum(times) / batches:7.3f} ms/batch {len(times):6d}x p50 {times[len(times) // 2]:.3f}  {step:8s} {sql}")


if __name__ == "__main__":
    main()
