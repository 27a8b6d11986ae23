"""Time the audit log's reads as its readers make them (docs/SCALE.md, session 16: the audit log's reads at a
city's volume), in-process, through the services the API calls.

    SSCARD_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/scale_1m \\
        .venv/bin/python tools/audit_reads.py var/demo1m.json [--calls 12]

For the operator, a center supervisor and both banks' supervisors (the demo's staff tokens: the secret key
must be the one they were issued under, SSCARD_VAR_DIR or ./var) and a list of filters, common and rare,
and for two of the demo's sample cardholders' access logs, it calls each read `--calls` times and prints the median of the last
half (the first calls of each pooled connection load the partitions' catalog entries). The session's
5 million extra records came from an INSERT ... SELECT generate_series (its mix in SCALE.md). A read of a
person writes a `viewed` record: a demo database only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

CASES = [
    ("admin", {}), ("admin", {"result": "refused"}), ("admin", {"operation": "bank.deposit"}),
    ("admin", {"actor_id": "9"}), ("admin", {"channel": "counter", "result": "refused"}),
    ("csup01", {"operation": "card.collect"}),
    ("bsup_gsb", {}), ("bsup_gsb", {"result": "refused"}), ("bsup_jsb", {"operation": "bank.withdraw"}),
    ("bsup_jsb", {"result": "refused", "channel": "terminal"}), ("bsup_gsb", {"offset": 900}),
    ("admin", {"operation": "staff.add_user"}), ("admin", {"result": "wrong_password"}),
    ("admin", {"actor_id": "11"}), ("bsup_gsb", {"operation": "staff.issue_token"}),
    ("bsup_jsb", {"result": "wrong_password"}),
]


def _median(call, calls: int) -> float:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times[calls // 2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo_json", type=Path)
    parser.add_argument("--calls", type=int, default=12)
    args = parser.parse_args()

    from sscard.core.roles import Channel
    from sscard.services import audit, staff
    from sscard.services.app import build_app
    from sscard.services.passwords import cardholder_actor

    app = build_app()
    demo = json.loads(args.demo_json.read_text())
    tokens = {u["username"]: u["api_token"] for u in demo["staff"]}
    people = [p["person_id"] for p in demo["sample_cardholders"][:2]]
    try:
        for user, filters in [*CASES, ("csup01", {"person_id": people[0]})]:
            actor = staff.actor_for_token(app, tokens[user])
            found = len(audit.read_audit(app, actor, **filters)["records"])
            ms = _median(lambda actor=actor, filters=filters: audit.read_audit(app, actor, **filters), args.calls)
            print(f"{user:9} {json.dumps(filters):45} {found:4} records {ms:9.1f} ms")
        for person_id in people:
            me = cardholder_actor(person_id, "-", Channel.PORTAL)
            found = len(audit.about_me(app, me)["records"])
            print(f"about_me  {person_id:<45} {found:4} records {_median(lambda me=me: audit.about_me(app, me), args.calls):9.1f} ms")
    finally:
        app.close()


if __name__ == "__main__":
    main()
