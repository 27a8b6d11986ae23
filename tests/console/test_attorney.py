"""Powers of attorney: recorded, checked on every agent action, in the audit, revocable."""

from __future__ import annotations

import pytest

from sscard.core.errors import SscardError
from sscard.services import attorney, loss

from .helpers import AGENT_ID, OTHER_ID, audits, poa


def test_recorded_power_of_attorney_is_listed_masked_and_valid(city, app):
    card = city.issued_card()
    out = poa(city, card, scope=["card.collect"])
    assert out["status"] == "valid"
    assert out["agent_citizen_id"] != AGENT_ID and out["agent_citizen_id"].endswith(AGENT_ID[-4:])
    listed = attorney.list_for_person(app, city.actor("clerk"), card.person_id)
    assert [p["id"] for p in listed["attorneys"]] == [out["id"]]
    assert audits(app, "attorney.record")[-1].person_id == card.person_id


def test_agent_formal_loss_with_valid_power_of_attorney_is_audited_with_it(city, app):
    card = city.issued_card()
    p = poa(city, card, scope=["ss_loss.report_formal"])
    out = loss.report_formal_loss(app, city.actor("clerk"), card.card_number, card.citizen_id, p["id"], AGENT_ID)
    assert out["ss_status"] == "formal_loss"
    record = audits(app, "ss_loss.report_formal")[-1]
    assert record.attorney_id == p["id"] and record.on_behalf_of == card.person_id and record.result == "ok"


def test_out_of_scope_expired_and_revoked_powers_of_attorney_are_refused_and_the_refusal_audited(city, app, clock):
    card = city.issued_card()
    clerk = city.actor("clerk")
    narrow = poa(city, card, scope=["card.collect"])
    with pytest.raises(SscardError) as err:
        loss.report_formal_loss(app, clerk, card.card_number, card.citizen_id, narrow["id"])
    assert err.value.code == "attorney_not_valid"
    refused = audits(app, "ss_loss.report_formal")[-1]
    assert refused.result == "attorney_not_valid" and refused.attorney_id == narrow["id"]

    short = poa(city, card, scope=["ss_loss.report_formal"], days=2)
    clock.advance(days=3)
    with pytest.raises(SscardError) as err:
        loss.report_formal_loss(app, clerk, card.card_number, card.citizen_id, short["id"])
    assert err.value.code == "attorney_not_valid"
    assert attorney.view(app, clerk, short["id"])["status"] == "expired"

    later = poa(city, card, scope=["ss_loss.report_formal"], start_offset=5)
    with pytest.raises(SscardError):
        loss.report_formal_loss(app, clerk, card.card_number, card.citizen_id, later["id"])

    good = poa(city, card, scope=["ss_loss.report_formal"])
    attorney.revoke(app, clerk, good["id"], "本人撤销")
    with pytest.raises(SscardError) as err:
        loss.report_formal_loss(app, clerk, card.card_number, card.citizen_id, good["id"])
    assert err.value.code == "attorney_not_valid"
    with pytest.raises(SscardError):
        attorney.revoke(app, clerk, good["id"])


def test_power_of_attorney_of_another_principal_is_refused(city, app):
    mine, other = city.issued_card(), city.issued_card("王五")
    p = poa(city, other, scope=["ss_loss.report_formal"])
    with pytest.raises(SscardError) as err:
        loss.report_formal_loss(app, city.actor("clerk"), mine.card_number, mine.citizen_id, p["id"])
    assert err.value.code == "attorney_not_valid"


def test_identity_check_by_agent_needs_the_agents_own_id_and_opens_a_visit(city, app):
    card = city.issued_card()
    clerk = city.actor("clerk")
    p = poa(city, card)
    with pytest.raises(SscardError) as err:
        attorney.identity_check(app, clerk, card.person_id, card.citizen_id, p["id"], OTHER_ID)
    assert err.value.code == "identity_mismatch"
    visit = attorney.identity_check(app, clerk, card.person_id, card.citizen_id, p["id"], AGENT_ID)
    assert visit["presenter"] == "agent" and visit["attorney"]["id"] == p["id"]
    record = audits(app, "attorney.identity_check")[-1]
    assert record.attorney_id == p["id"] and record.result == "ok"
    ident = attorney.visit_identity(app, clerk, visit["id"])
    assert ident["presented_citizen_id"] == card.citizen_id and ident["agent_citizen_id"] == AGENT_ID
    # another clerk cannot use this visit
    with pytest.raises(SscardError):
        attorney.get_visit(app, city.actor("clerk2"), visit["id"])


def test_identity_check_with_the_wrong_id_is_refused_and_a_visit_lapses(city, app, clock):
    card = city.issued_card()
    clerk = city.actor("clerk")
    with pytest.raises(SscardError) as err:
        attorney.identity_check(app, clerk, card.person_id, OTHER_ID)
    assert err.value.code == "identity_mismatch"
    visit = attorney.identity_check(app, clerk, card.person_id, card.citizen_id)
    assert visit["presenter"] == "cardholder"
    clock.advance(minutes=31)
    with pytest.raises(SscardError) as err:
        attorney.get_visit(app, clerk, visit["id"])
    assert err.value.code == "visit_not_valid"


def test_power_of_attorney_needs_scope_dates_and_a_known_operation(city, app):
    card = city.issued_card()
    clerk = city.actor("clerk")
    today = app.clock.today()
    for scope, start, end, code in (
        ([], today, today, "attorney_scope_empty"),
        (["bank.activate"], today, today, "invalid_request"),
        (["card.collect"], today, today.replace(year=today.year - 1), "attorney_dates_invalid"),
    ):
        with pytest.raises(SscardError) as err:
            attorney.record(app, clerk, card.person_id, "李四", AGENT_ID, scope, start, end, "WT-1")
        assert err.value.code == code


def test_agent_resets_the_ss_password_only_when_the_power_of_attorney_names_it(city, app):
    from sscard.services import passwords

    card = city.issued_card()
    clerk = city.actor("clerk")
    for _ in range(3):
        with pytest.raises(SscardError):
            passwords.verify_ss_password(app, city.cardholder(card), card.card_number, "908172")
    narrow = poa(city, card, scope=["card.collect"])
    with pytest.raises(SscardError) as err:
        passwords.reset_ss_password_by_agent(app, clerk, card.card_number, card.citizen_id, narrow["id"], AGENT_ID)
    assert err.value.code == "attorney_not_valid"
    good = poa(city, card, scope=["ss_password.reset"])
    with pytest.raises(SscardError) as err:
        passwords.reset_ss_password_by_agent(app, clerk, card.card_number, card.citizen_id, good["id"], OTHER_ID)
    assert err.value.code == "identity_mismatch"
    out = passwords.reset_ss_password_by_agent(app, clerk, card.card_number, card.citizen_id, good["id"], AGENT_ID)
    assert out["reset"] is True
    record = audits(app, "ss_password.reset_by_agent")[-1]
    assert record.attorney_id == good["id"] and record.on_behalf_of == card.person_id
    assert record.object_id == card.card_number and record.after == "ss_password_reset"
    assert passwords.verify_ss_password(app, city.cardholder(card), card.card_number, "123456")["verified"]
