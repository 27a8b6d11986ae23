"""(f) a mix at the counter through the staff API, in equal parts: a teller's cash deposit, a cash
withdrawal with the cardholder's PIN (of the account just credited, so it never runs dry), and a
clerk's replacement application for a damaged card with the 20.00 yuan production fee paid in cash
(a fee transfer into the agency's fee income, a numbered receipt, the new card's rows).

Each of the three is one request; tps counts requests, and each kind's own figures are reported too."""

from __future__ import annotations

import random

from .common import drive_http, figures
from .medical import refused

TELLERS = ("teller_gsb1", "teller_gsb2")  # both at outlets of GSB, the accounts' bank
CLERKS = ("clerk01", "clerk02", "clerk03")


def counter_mix(rig, clients: int, seconds: float) -> dict:
    import time

    client = rig.http()
    accounts = [rig.gsb_accounts[i::clients] for i in range(clients)]
    replaceable = [rig.replaceable[i::clients] for i in range(clients)]
    step = [0] * clients
    codes: dict[str, int] = {}
    kinds: dict[str, list[float]] = {"deposit": [], "withdrawal": [], "replacement_fee": []}  # latencies, seconds

    def one(c: int, _rng: random.Random) -> bool:
        n = step[c]
        step[c] += 1
        kind = ("deposit", "withdrawal", "replacement_fee")[n % 3]
        if kind == "replacement_fee" and n // 3 >= len(replaceable[c]):
            kind = "deposit"  # every card is replaced once at most: a second application is refused
        t0 = time.perf_counter()
        if kind == "replacement_fee":
            number, cid = replaceable[c][n // 3]
            status, body = client.post(c, "/api/v1/counter/replacements",
                                       {"card_number": number, "reason": "damaged", "presented_citizen_id": cid,
                                        "payment": "cash"}, rig.staff_tokens[CLERKS[c % len(CLERKS)]])
            ok = status == 201
        else:
            pan, pin = accounts[c][(n // 3) % len(accounts[c])]
            token = rig.staff_tokens[TELLERS[c % len(TELLERS)]]
            if kind == "deposit":
                status, body = client.post(c, f"/api/v1/bank-accounts/{pan}/deposit", {"amount_fen": 500}, token)
            else:
                status, body = client.post(c, f"/api/v1/bank-accounts/{pan}/withdrawal",
                                           {"amount_fen": 300, "pin": pin}, token)
            ok = status == 200
        if not ok:
            return refused(codes, status, body)
        kinds[kind].append(time.perf_counter() - t0)
        return True

    one(0, random.Random(0))  # the server's first request
    step[0] = 0
    for lat in kinds.values():
        lat.clear()
    out = drive_http(client, clients, seconds, one, codes)
    out["by_kind"] = {k: {key: round(v, 2) for key, v in figures(lat, out["seconds"], 0).items()
                          if key in ("tps", "p50_ms", "p99_ms", "ok")} for k, lat in kinds.items()}
    return out
