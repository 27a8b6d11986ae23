"""What both route walkers need around cardholder A: a power of attorney, a counter visit, a replacement
applied and sent to production, and a 12333 caller waiting for an agent."""

from __future__ import annotations

from sscard.services import attorney, hotline, production, replacement
from tests.console.helpers import poa


def counter_work(city, app, card, call_sid: str) -> dict:
    clerk = city.actor("clerk")
    power = poa(city, card)
    visit = attorney.identity_check(app, clerk, card.person_id, card.citizen_id)
    other = city.issued_card("王五")
    applied = replacement.apply(app, clerk, other.card_number, "damaged", other.citizen_id, payment="cash")
    batch = production.start_batch(app, clerk, "C01")["batch"]
    hotline.create_call(app, {"call_sid": call_sid, "line": hotline.LINE_12333, "node": "main", "lang": "zh"})
    request = hotline.request_agent(app, hotline.gateway(hotline.LINE_12333), call_sid, "main", "补卡",
                                    callback_number="+8613800138000")["id"]
    return {"attorney_id": power["id"], "visit_id": visit["id"], "receipt_no": applied["receipt_no"],
            "batch_code": batch, "request_id": request}
