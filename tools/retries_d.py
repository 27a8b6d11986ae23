"""The bench's (d) in-process, counting its retries by PostgreSQL's message: transfers one per transaction
among 20 hot accounts (bench.ledger.LedgerRig without the HTTP server), 8 threads.

    python tools/retries_d.py            # this checkout's code; DB=sqlite SECS=10 to change
    PYTHONPATH=/path/to/other/src python tools/retries_d.py   # another checkout's, for a pair
"""

from __future__ import annotations

import collections
import os

from sscard import db as dbmod
from sscard.bench.common import DEFAULT_PG
from sscard.bench.ledger import LedgerRig

kinds: collections.Counter[tuple[str, str]] = collections.Counter()
plain = dbmod.is_retryable


def counting(exc: BaseException) -> bool:
    found = plain(exc)
    if found:
        orig = getattr(exc, "orig", exc)
        diag = getattr(orig, "diag", None)
        kinds[((getattr(diag, "message_primary", None) or str(orig))[:70], (getattr(diag, "message_detail", None) or "")[:90])] += 1
    return found


dbmod.is_retryable = counting
rig = LedgerRig(os.environ.get("DB", "postgres"), os.environ.get("SSCARD_BENCH_POSTGRES_URL", DEFAULT_PG), 20, 8,
                "full", lambda _m: None, http=False)
try:
    before = rig.app.db.retries
    out = rig.unbatched_transfers(8, float(os.environ.get("SECS", "10")))
    retries = rig.app.db.retries - before
    print({k: round(out[k], 1) for k in ("tps", "p50_ms", "p99_ms", "ok", "errors")},
          f"retries {retries} ({retries / max(1, out['ok']):.2f} per transfer)")
    for (message, detail), n in kinds.most_common(6):
        print(f"{n:6}  {message} {detail}")
    print(rig.check())
finally:
    rig.close()
