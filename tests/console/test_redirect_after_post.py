"""The window's non-htmx results are pages of their own address (redirect-after-POST): the fee step and an
action's result answer a POST with 303 to a GET page, which shows the result by the operation's one-time key
(its kept answer), to the same staff session only, doing nothing again however often it is loaded."""

from __future__ import annotations

from sscard.models.counter import FeeReceipt

from .helpers import audits
from .test_console_pages import _card_ids, _signed_in, _visit
from .test_replacement_fee_confirm import _confirm_form, _count


def test_a_formal_loss_result_is_a_get_page_that_reloads_without_doing_it_again(app, city):
    card = city.issued_card()
    client, csrf = _signed_in(app)
    with client:
        url = _visit(client, csrf, card.person_id, card.citizen_id)
        form = {"csrf_token": csrf, "card_id": _card_ids(client.get(url).text, "formal-loss")[0], "op_key": "fl-prg",
                "confirmed": "1"}
        r = client.post(f"{url}/formal-loss", data=form, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith(f"{url}/done?")
        result = r.headers["location"]
        for _ in range(2):  # a load and a reload
            page = client.get(result)
            assert page.status_code == 200 and "已办理社会保障卡正式挂失" in page.text and 'id="done"' in page.text
        assert [a.result for a in audits(app, "ss_loss.report_formal")] == ["ok"]

        # another session of the same clerk (another tab signed in again, a copied address) is shown nothing
        other, _ = _signed_in(app)
        with other:
            shown = other.get(result)
            assert "已办理社会保障卡正式挂失" not in shown.text and shown.status_code == 422
        # a changed address: nothing
        forged = client.get(result[:-3] + ("AAA" if not result.endswith("AAA") else "BBB"))
        assert forged.status_code == 422 and 'id="done"' not in forged.text


def test_a_paid_replacement_s_fee_step_and_result_are_get_pages_and_the_fee_is_taken_once(app, city):
    card = city.issued_card()
    client, csrf = _signed_in(app)
    with client:
        url = _visit(client, csrf, card.person_id, card.citizen_id)
        card_id = _card_ids(client.get(url).text, "replace")[0]
        r = client.post(f"{url}/replace", data={"csrf_token": csrf, "op_key": "k-prg", "card_id": card_id,
                                                "reason": "damaged", "payment": "cash", "collect_center": "C01"},
                        follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith(f"{url}/fee?")
        step = client.get(r.headers["location"])
        assert step.status_code == 200 and "贰拾元整" in step.text and _count(app, FeeReceipt) == 0
        assert client.get(r.headers["location"]).text.count('id="confirm-yes"') == 1  # a reload: the same step
        fields = _confirm_form(step.text)
        done = client.post(f"{url}/replace", data=fields, follow_redirects=False)
        assert done.status_code == 303 and "/done?" in done.headers["location"]
        again = client.post(f"{url}/replace", data=fields, follow_redirects=False)  # a resubmission
        assert again.status_code == 303
        for location in (done.headers["location"], again.headers["location"]):
            assert "已收工本费 ¥20.00" in client.get(location).text
        assert _count(app, FeeReceipt) == 1
