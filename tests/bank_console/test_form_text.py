"""The bank counter's forms keep the API's free-text rule too (web.forms.Form, the one form layer)."""

from __future__ import annotations

from .test_pages import activated


def test_a_reason_with_an_invisible_character_is_refused_at_the_bank_counter_too(app, bank_city, counter):
    teller, sup = counter("teller"), counter("bsup")
    card = activated(bank_city, app, teller)
    refused = sup.post("/bank/supervisor", {"pan": card.pan, "task": "freeze", "reason": "司法\u2066冻结"})
    assert refused.status_code == 422 and 'data-error-for="reason"' in refused.text
    assert "文字方向控制符" in refused.text and "账户已冻结" not in refused.text
    assert 'value="司法冻结"' in refused.text  # kept, without the refused character
