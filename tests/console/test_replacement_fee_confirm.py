"""A replacement that takes a fee is confirmed at the window before the fee is taken (the UX tester's finding:
one click took it): the step names the fee in figures and 大写 and how it is paid; the confirmed request does
what the step named, once, however often it is sent (web.confirming, shared with the bank counter)."""

from __future__ import annotations

import html
import re
from contextlib import contextmanager

from sqlalchemy import func, select

from sscard.models.counter import FeeReceipt, ReplacementApplication

from .helpers import audits
from .test_console_pages import _card_ids, _signed_in, _visit


def _count(app, model) -> int:
    with app.db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def _confirm_form(page: str) -> dict[str, str]:
    form = re.search(r'<section class="panel confirm".*?<form[^>]*>(.*?)</form>', page, re.S).group(1)
    return {m[0]: html.unescape(m[1]) for m in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form)}


def _ask(client, url, csrf, card_id, **choices) -> str:
    data = {"csrf_token": csrf, "op_key": "k-rp1", "card_id": card_id, "reason": "damaged", "payment": "cash",
            "collect_center": "C01", **choices}
    r = client.post(f"{url}/replace", data=data)
    assert r.status_code == 200, r.text[:500]
    return r.text


@contextmanager
def _replacing(app, card):
    """A clerk signed in, a visit opened for the card's holder, and the card's id on the replace form."""
    client, csrf = _signed_in(app)
    with client:
        url = _visit(client, csrf, card.person_id, card.citizen_id)
        yield client, csrf, url, _card_ids(client.get(url).text, "replace")[0]


def test_a_paid_replacement_names_the_fee_in_words_and_takes_nothing_before_the_clerk_confirms(app, city):
    card = city.issued_card()
    with _replacing(app, card) as (client, csrf, url, card_id):
        page = _ask(client, url, csrf, card_id)
        step = re.search(r'<section class="panel confirm".*?</section>', page, re.S).group(0)
        assert "¥20.00" in step and "贰拾元整" in step and "现金" in step and 'id="confirm-yes"' in step
        assert _count(app, FeeReceipt) == 0 and _count(app, ReplacementApplication) == 0
        assert not audits(app, "replacement.apply")

        fields = _confirm_form(page)
        assert fields["op_key"] == "k-rp1" and fields["confirmed"] == "1"
        first = client.post(f"{url}/replace", data=fields)
        again = client.post(f"{url}/replace", data=fields)  # a double click, a reload of the confirmation
        assert first.status_code == again.status_code == 200
        assert "已收工本费 ¥20.00" in first.text and "已收工本费 ¥20.00" in again.text
        assert _count(app, FeeReceipt) == 1 and _count(app, ReplacementApplication) == 1


def test_a_confirmation_that_names_other_choices_than_its_step_sealed_takes_nothing(app, city):
    card = city.issued_card()
    with _replacing(app, card) as (client, csrf, url, card_id):
        fields = _confirm_form(_ask(client, url, csrf, card_id))
        for forged in ({**fields, "collect_center": "C02"}, {**fields, "sealed": ""},
                       {**fields, "reason": "bank_change"}, {k: v for k, v in fields.items() if k != "sealed"}):
            r = client.post(f"{url}/replace", data=forged)
            assert r.status_code == 422, r.text[:300]
        assert _count(app, FeeReceipt) == 0 and _count(app, ReplacementApplication) == 0


def test_a_confirmation_of_another_visit_is_refused_as_the_customer_changed(app, city):
    one, two = city.issued_card("甲一"), city.issued_card("乙二")
    client, csrf = _signed_in(app)
    with client:
        url_one = _visit(client, csrf, one.person_id, one.citizen_id)
        fields = _confirm_form(_ask(client, url_one, csrf, _card_ids(client.get(url_one).text, "replace")[0]))
        url_two = _visit(client, csrf, two.person_id, two.citizen_id)
        r = client.post(f"{url_two}/replace", data=fields)
        assert r.status_code == 409 and "未办理任何业务" in r.text
        assert _count(app, FeeReceipt) == 0


def test_a_confirmation_changed_after_it_was_done_is_already_used_and_takes_no_second_fee(app, city):
    card = city.issued_card()
    with _replacing(app, card) as (client, csrf, url, card_id):
        first = _confirm_form(_ask(client, url, csrf, card_id))
        # the clerk went back to the first form, chose another center and asked again (a second fee step,
        # under the same key), then confirmed the first step, and its answer was lost; then the second
        changed = _confirm_form(_ask(client, url, csrf, card_id, collect_center="C02"))
        done = client.post(f"{url}/replace", data=first)
        assert "已收工本费" in done.text
        # asked again now, the replacement's own check says it is under way: no third fee step
        assert "此卡已在办理补换卡" in client.post(f"{url}/replace", data={
            "csrf_token": csrf, "op_key": "k-rp2", "card_id": card_id, "reason": "damaged", "payment": "cash",
            "collect_center": "C01"}).text
        r = client.post(f"{url}/replace", data=changed)
        assert r.status_code == 409 and "此确认已经提交过" in r.text
        assert _count(app, FeeReceipt) == 1


def test_a_free_or_waived_replacement_needs_no_fee_step(app, city):
    card = city.issued_card()
    with _replacing(app, card) as (client, csrf, url, card_id):
        r = client.post(f"{url}/replace", data={"csrf_token": csrf, "op_key": "k1", "card_id": card_id,
                                                "reason": "data_change", "payment": ""})
        assert r.status_code == 200 and "补换卡申请已受理" in r.text and "此项业务免收工本费" in r.text


def test_a_replacement_that_would_be_refused_is_refused_before_the_fee_step(app, city):
    """A lost card with no formal loss (and no formal loss recorded in the application): the replacement's
    own check (replacement.check) refuses it at the first click, before the fee is named and confirmed."""
    card = city.issued_card()
    with _replacing(app, card) as (client, csrf, url, card_id):
        r = client.post(f"{url}/replace", data={"csrf_token": csrf, "op_key": "k-rp9", "card_id": card_id,
                                                "reason": "lost", "payment": "cash", "collect_center": "C01"})
        assert r.status_code == 409
        assert "因遗失补卡须先办理正式挂失" in r.text
        assert '<section class="panel confirm"' not in r.text and 'id="confirm-yes"' not in r.text
        assert _count(app, FeeReceipt) == 0 and _count(app, ReplacementApplication) == 0
        # the same choices with the formal loss recorded in the application do reach the fee step
        r = client.post(f"{url}/replace", data={"csrf_token": csrf, "op_key": "k-rp9", "card_id": card_id,
                                                "reason": "lost", "payment": "cash", "collect_center": "C01",
                                                "record_formal_loss": "1"})
        assert r.status_code == 200 and 'id="confirm-yes"' in r.text
