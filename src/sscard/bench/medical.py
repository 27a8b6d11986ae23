"""(e) medical settlements over HTTP: each client, at its own hospital or pharmacy terminal, asks for a
pre-settlement (quote) and settles it with the SS password, paying the rest in cash. One settlement
= the two requests; its latency is both."""

from __future__ import annotations

import json
import random

from .common import drive_http

BILL = [{"category": "drug", "name": "阿莫西林胶囊", "amount_fen": 3_456, "covered": True},
        {"category": "treatment", "name": "门诊诊查费", "amount_fen": 2_500, "covered": True},
        {"category": "material", "name": "自费敷料", "amount_fen": 800, "covered": False}]


def settlements(rig, clients: int, seconds: float) -> dict:
    client = rig.http()
    per_client = [rig.medical_cards[i::clients] for i in range(clients)]
    turn = [0] * clients
    codes: dict[str, int] = {}

    def settle(c: int, _rng: random.Random) -> bool:
        cards = per_client[c]
        number, ident = cards[turn[c] % len(cards)]
        turn[c] += 1
        token = rig.terminal_tokens[c]
        status, body = client.post(c, "/api/v1/terminal/medical/pre-settlements",
                                   {"card_number": number, "ident_code": ident, "lines": BILL}, token, key=False)
        if status != 200:
            return refused(codes, status, body)
        status, body = client.post(c, "/api/v1/terminal/medical/settlements",
                                   {"quote": json.loads(body)["quote"], "card_number": number, "ident_code": ident,
                                    "ss_password": "123456", "pay_with": "cash"}, token)
        return status == 201 or refused(codes, status, body)

    settle(0, random.Random(0))  # the server's first request
    out = drive_http(client, clients, seconds, settle, codes)
    out["check"] = check(rig)
    return out


def refused(codes: dict, status: int, body: bytes) -> bool:
    try:
        code = str(json.loads(body).get("code", status))
    except ValueError:
        code = f"http_{status}"
    codes[code] = codes.get(code, 0) + 1
    return False


def check(rig) -> str:
    """After the run: every personal account is the sum of its movements, and the settlements' personal
    shares are exactly the settlement movements."""
    from sqlalchemy import func, select

    from ..models.medical import MedicalSettlement, PersonalAccount, PersonalAccountMovement

    mv = PersonalAccountMovement
    with rig.app.db.session() as s:
        balances = s.scalar(select(func.coalesce(func.sum(PersonalAccount.balance_fen), 0)))
        moved = s.scalar(select(func.coalesce(func.sum(mv.amount_fen), 0)))
        spent = s.scalar(select(func.coalesce(func.sum(MedicalSettlement.personal_fen), 0)))
        spent_moves = s.scalar(select(func.coalesce(func.sum(mv.amount_fen), 0))
                               .where(mv.kind.in_(("settlement", "refund"))))
        settled = s.scalar(select(func.count()).select_from(MedicalSettlement))
    ok = balances == moved and spent == -spent_moves
    return f"{'ok' if ok else 'MISMATCH'}: {settled} settlement rows; personal accounts = their movements"
