"""The pages' forms keep the API's free-text rule (core.text: no control, bidirectional or invisible
character), declared once in the form parsing layer (web.forms.Form), with the refusal tied to its field."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from sscard.models.counter import PowerOfAttorney

from .helpers import AGENT_ID
from .test_console_pages import _signed_in


def _poa_count(app) -> int:
    with app.db.session() as s:
        return s.scalar(select(func.count()).select_from(PowerOfAttorney))


def _record(client, csrf, person_id, ref, lang="zh"):
    today = "2026-01-01"
    client.cookies.set("lang", lang)
    return client.post(f"/console/persons/{person_id}/attorneys", data={
        "csrf_token": csrf, "op_key": "poa-1", "agent_name": "李四", "agent_citizen_id": AGENT_ID,
        "scope": "card.collect", "valid_from": today, "valid_to": "2099-01-01", "document_ref": ref})


def test_a_document_reference_with_a_bidirectional_control_is_refused_at_its_field_and_nothing_is_recorded(app, city):
    card = city.issued_card()
    client, csrf = _signed_in(app)
    with client:
        r = _record(client, csrf, card.person_id, "WT-\u202e2026-001")
        assert r.status_code == 422
        assert "文字方向控制符" in r.text
        alert = re.search(r'<div class="msg error" role="alert"[^>]*>', r.text).group(0)
        assert 'data-code="invalid_text"' in alert and 'data-error-for="document_ref"' in alert
        # the form is shown again with what was typed, without the refused character
        assert 'name="document_ref" maxlength="64" required value="WT-2026-001"' in r.text
        assert "\u202e" not in r.text
        assert _poa_count(app) == 0

        en = _record(client, csrf, card.person_id, "\u200bWT-2026-001", lang="en")
        assert en.status_code == 422 and "text-direction control characters" in en.text
        assert _poa_count(app) == 0

        ok = _record(client, csrf, card.person_id, "WT-2026-001")
        assert ok.status_code == 200 and _poa_count(app) == 1

