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


def nth(rig, accounts: list[tuple[str, str]], replaceable: list[tuple[str, str]], n: int, who: int
        ) -> tuple[str, str, dict, str, int]:
    """A client's n-th request of the mix: (kind, path, body, token, the status that answers it done).
    Deposit, withdrawal, replacement in turn, over the client's own accounts and cards; each card is
    replaced once at most (a second application is refused), so a client with none left deposits."""
    kind = ("deposit", "withdrawal", "replacement_fee")[n % 3]
    if kind == "replacement_fee" and n // 3 >= len(replaceable):
        kind = "deposit"
    if kind == "replacement_fee":
        number, cid = replaceable[n // 3]
        return (kind, "/api/v1/counter/replacements",
                {"card_number": number, "reason": "damaged", "presented_citizen_id": cid, "payment": "cash"},
                rig.staff_tokens[CLERKS[who % len(CLERKS)]], 201)
    pan, pin = accounts[(n // 3) % len(accounts)]
    token = rig.staff_tokens[TELLERS[who % len(TELLERS)]]
    if kind == "deposit":
        return kind, f"/api/v1/bank-accounts/{pan}/deposit", {"amount_fen": 500}, token, 200
    return kind, f"/api/v1/bank-accounts/{pan}/withdrawal", {"amount_fen": 300, "pin": pin}, token, 200


def counter_mix(rig, clients: int, seconds: float, client: str = "python") -> dict:
    """`client`: "python" (threads of common.HttpClient, which also time each kind), "wrk" (a C client, as
    the baseline's: `_wrk_mix`) or "auto" (wrk when installed); LedgerRig.http_payments says how they differ."""
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
        kind, path, body, token, done = nth(rig, accounts[c], replaceable[c], step[c], c)
        step[c] += 1
        t0 = time.perf_counter()
        status, answer = http.post(c, path, body, token)
        if status != done:
            return refused(codes, status, answer)
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
    """The same mix through wrk (`counter.lua`): a file of the requests (`nth`), each of wrk's threads
    taking its own lines in turn (each replacement once), written for `rate` requests a second, far above
    what the server answers here; a thread at the end of its lines would start again (replacements then
    refused: counted as errors, and as `wrapped`)."""
    threads = max(1, min(2, clients))
    per_thread = int(rate * (seconds + 1) / threads) + 1
    *cards, spare = rig.replaceable
    _warm_up(rig, spare)
    accounts = [rig.gsb_accounts[i::threads] for i in range(threads)]
    replaceable = [cards[i::threads] for i in range(threads)]
    listing = Path(rig.workdir) / "counter.tsv"
    with listing.open("w", encoding="utf-8") as f:
        for n in range(per_thread):  # thread t of the script takes lines t, t + threads, ...
            for t in range(threads):
                kind, path, body, token, done = nth(rig, accounts[t], replaceable[t], n, n)
                f.write(f"{done}\t{kind}\t{path}\t{token}\t{json.dumps(body)}\n")
    port = rig.server.ready().port
    return wrk(port, "counter.lua", [str(listing), str(threads), uuid.uuid4().hex[:12]], clients, seconds) | {
        "client": "wrk (C, 2 threads)"}


def _warm_up(rig, card: tuple[str, str]) -> None:
    """One request of each kind before the timed run (the server's first use of each route), through the
    Python client; the replacement for a card the run does not use."""
    http = rig.http()
    try:
        answers = [(done, http.post(0, path, body, token))
                   for _kind, path, body, token, done in (nth(rig, rig.gsb_accounts[:1], [card], n, 0) for n in range(3))]
    finally:
        http.close()
    if any(status != done for done, (status, _body) in answers):
        raise RuntimeError(f"the counter mix's warm-up was refused: {[a[1][1][:200] for a in answers]}")
