"""(f) a mix at the counter through the staff API, in equal parts: a teller's cash deposit, a cash
withdrawal with the cardholder's PIN (of the account just credited, so it never runs dry), and a
clerk's replacement application for a damaged card with the 20.00 yuan production fee paid in cash
(a fee transfer into the agency's fee income, a numbered receipt, the new card's rows).

Each of the three is one request; tps counts requests, and each kind's own figures are reported too."""

from __future__ import annotations

import json
import random
import shutil
import uuid
from pathlib import Path

from .common import drive_http, figures, wrk
from .medical import refused

TELLERS = ("teller_gsb1", "teller_gsb2")  # both at outlets of GSB, the accounts' bank
CLERKS = ("clerk01", "clerk02", "clerk03")


def counter_mix(rig, clients: int, seconds: float, client: str = "auto") -> dict:
    """`client`: "wrk" (a C client, as the baseline's: `_wrk_mix`), "python" (threads of common.HttpClient,
    which also time each kind) or "auto" (wrk when installed)."""
    import time

    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    if client == "wrk":
        return _wrk_mix(rig, clients, seconds)
    http = rig.http()
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
            status, body = http.post(c, "/api/v1/counter/replacements",
                                       {"card_number": number, "reason": "damaged", "presented_citizen_id": cid,
                                        "payment": "cash"}, rig.staff_tokens[CLERKS[c % len(CLERKS)]])
            ok = status == 201
        else:
            pan, pin = accounts[c][(n // 3) % len(accounts[c])]
            token = rig.staff_tokens[TELLERS[c % len(TELLERS)]]
            if kind == "deposit":
                status, body = http.post(c, f"/api/v1/bank-accounts/{pan}/deposit", {"amount_fen": 500}, token)
            else:
                status, body = http.post(c, f"/api/v1/bank-accounts/{pan}/withdrawal",
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
    out = drive_http(http, clients, seconds, one, codes)
    out["by_kind"] = {k: {key: round(v, 2) for key, v in figures(lat, out["seconds"], 0).items()
                          if key in ("tps", "p50_ms", "p99_ms", "ok")} for k, lat in kinds.items()}
    return out | {"client": "python (threads)"}


def _wrk_mix(rig, clients: int, seconds: float, rate: int = 6000) -> dict:
    """The same mix through wrk (`counter.lua`): a file of the requests, in the order the Python clients
    send them, each thread taking its own lines in turn (each replacement once), written for `rate`
    requests a second, far above what the server answers here; a thread at the end of its lines would
    start again (replacements then refused: counted as errors, and as `wrapped`)."""
    threads = max(1, min(2, clients))
    per_thread = int(rate * (seconds + 1) / threads) + 1
    *cards, spare = rig.replaceable
    _warm_up(rig, spare)
    accounts = [rig.gsb_accounts[i::threads] for i in range(threads)]
    replaceable = [cards[i::threads] for i in range(threads)]
    lines: list[list[str]] = []
    for t in range(threads):
        mine = []
        for n in range(per_thread):
            kind = ("deposit", "withdrawal", "replacement_fee")[n % 3]
            if kind == "replacement_fee" and n // 3 >= len(replaceable[t]):
                kind = "deposit"  # every card is replaced once at most, as in the Python clients
            if kind == "replacement_fee":
                number, cid = replaceable[t][n // 3]
                body = {"card_number": number, "reason": "damaged", "presented_citizen_id": cid, "payment": "cash"}
                mine.append(["201", kind, "/api/v1/counter/replacements", rig.staff_tokens[CLERKS[n % len(CLERKS)]],
                             json.dumps(body)])
                continue
            pan, pin = accounts[t][(n // 3) % len(accounts[t])]
            token = rig.staff_tokens[TELLERS[n % len(TELLERS)]]
            if kind == "deposit":
                mine.append(["200", kind, f"/api/v1/bank-accounts/{pan}/deposit", token, '{"amount_fen": 500}'])
            else:
                mine.append(["200", kind, f"/api/v1/bank-accounts/{pan}/withdrawal", token,
                             json.dumps({"amount_fen": 300, "pin": pin})])
        lines.append(mine)
    listing = Path(rig.workdir) / "counter.tsv"
    with listing.open("w", encoding="utf-8") as f:
        for n in range(per_thread):  # thread t of the script takes lines t, t + threads, ...
            for t in range(threads):
                f.write("\t".join(lines[t][n]) + "\n")
    port = rig.server.ready().port
    return wrk(port, "counter.lua", [str(listing), str(threads), uuid.uuid4().hex[:12]], clients, seconds) | {
        "client": "wrk (C, 2 threads)"}


def _warm_up(rig, card: tuple[str, str]) -> None:
    """One request of each kind before the timed run (the server's first use of each route), through the
    Python client; the replacement for a card the run does not use."""
    http = rig.http()
    try:
        pan, pin = rig.gsb_accounts[0]
        token = rig.staff_tokens[TELLERS[0]]
        answers = [http.post(0, f"/api/v1/bank-accounts/{pan}/deposit", {"amount_fen": 500}, token),
                   http.post(0, f"/api/v1/bank-accounts/{pan}/withdrawal", {"amount_fen": 300, "pin": pin}, token),
                   http.post(0, "/api/v1/counter/replacements", {"card_number": card[0], "reason": "damaged",
                                                                  "presented_citizen_id": card[1], "payment": "cash"},
                             rig.staff_tokens[CLERKS[0]])]
    finally:
        http.close()
    if any(status not in (200, 201) for status, _body in answers):
        raise RuntimeError(f"the counter mix's warm-up was refused: {[a[1][:200] for a in answers]}")
