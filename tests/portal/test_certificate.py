"""The proof of insurance (参保证明, issue 17 point 6): issued by the cardholder as a PDF with a verification
code, checked by a third party on a public page that shows only the essentials, masked."""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest
from sqlalchemy import select

from sscard.core import certificates as codes
from sscard.core.errors import SscardError
from sscard.core.roles import SYSTEM_ACTOR
from sscard.models.foundation import AuditRecord
from sscard.models.insurance import Certificate
from sscard.services import certificates, insurance
from tests.portal.helpers import csrf, login_changed

EMPLOYER = ("91330106MA2H000001", "杭州西湖宏远科技有限公司")


def contributions(app, person_id: int, months: list[str], employer=EMPLOYER) -> None:
    for month in months:
        insurance.record_month(app, SYSTEM_ACTOR, person_id, month, *employer, 800_000)


def months_of(year: int, first: int = 1, last: int = 12) -> list[str]:
    return [f"{year}-{m:02d}" for m in range(first, last + 1)]


@pytest.fixture
def holder(city, app):
    card = city.issued_card("蒋文静")
    contributions(app, card.person_id, months_of(2024, 3) + months_of(2025, 1, 6))
    contributions(app, card.person_id, ["2025-06"], ("91330102MA2H000002", "上城恒泰贸易有限公司"))  # a second job
    return card


def test_a_code_is_17_characters_with_a_check_character_that_catches_typos():
    code = codes.new_code()
    assert len(code) == 17 and set(code) <= set(codes.ALPHABET)
    assert codes.normalize(codes.grouped(code).lower()) == code  # case and hyphens do not matter
    assert codes.normalize(code.replace("0", "O")) == code  # O typed for 0 still reads right


def _typos(code: str) -> list[str]:
    """Every single wrong character and every swap of two different neighbours of `code`."""
    wrong = [code[:i] + ch + code[i + 1:] for i in range(len(code)) for ch in codes.ALPHABET if ch != code[i]]
    swaps = [code[:i] + code[i + 1] + code[i] + code[i + 2:] for i in range(len(code) - 1) if code[i] != code[i + 1]]
    return wrong + swaps


def test_every_single_wrong_character_and_every_swap_of_neighbours_of_an_issued_code_is_caught():
    """Luhn mod 32 cannot see a `0` and a `Z` swapped (as Luhn mod 10 cannot see 09/90): this test failed
    about once in 30 runs while new_code could issue such a pair; it never does now. 3,000 codes drawn
    from a seeded generator, so that a code with the pair is met (~90 of them before the fix)."""
    draw = random.Random(17)
    issued = [codes.new_code(draw.randrange) for _ in range(3000)]
    assert not [c for c in issued if "0Z" in c or "Z0" in c]
    for code in issued[:300]:
        assert codes.normalize(code) == code
        assert [t for t in _typos(code) if codes.normalize(t) is not None] == [], code
    # the one blind spot, shown on a code built with it: why new_code draws again
    body = "0Z" + "1" * 14
    blind = body + codes.check_char(body)
    assert codes.normalize("Z0" + blind[2:]) == "Z0" + blind[2:]


def test_the_certificate_counts_months_per_kind_once_per_month_and_the_check_shows_it_masked(city, app, holder):
    me = city.cardholder(holder)
    issued = certificates.issue_certificate(app, me)
    assert (issued["period_from"], issued["period_to"]) == ("2024-03", "2025-06")
    assert issued["content"]["months"]["pension"] == 16  # June 2025 at two employers counts once
    assert issued["content"]["months"]["work_injury"] == 16
    assert [e["name"] for e in issued["content"]["employers"]] == [EMPLOYER[1], "上城恒泰贸易有限公司"]
    seen = certificates.check_code(app, "198.51.100.7", issued["code_grouped"].lower())
    assert seen["genuine"] is True and seen["name"] == "蒋**" and seen["citizen_id"].count("*") == 8
    assert seen["months"]["pension"] == 16 and (seen["period_from"], seen["period_to"]) == ("2024-03", "2025-06")
    assert "蒋文静" not in str(seen) and holder.citizen_id not in str(seen) and "employers" not in seen


def test_a_chosen_period_is_certified_alone_and_a_period_outside_the_record_is_refused(city, app, holder):
    me = city.cardholder(holder)
    issued = certificates.issue_certificate(app, me, "2025-01", "2025-06")
    assert issued["content"]["months"]["pension"] == 6
    assert [y["year"] for y in issued["content"]["per_year"]] == [2025]
    for period in (("2023-01", "2025-06"), ("2025-06", "2025-01"), ("2025-13", "2025-06")):
        with pytest.raises(SscardError) as err:
            certificates.issue_certificate(app, me, *period)
        assert err.value.code in ("certificate_period", "invalid_month")


def test_a_forged_or_mistyped_code_is_not_found_and_the_code_is_never_kept_in_clear(city, app, holder):
    issued = certificates.issue_certificate(app, city.cardholder(holder))
    code = issued["code"]
    forged_body = ("7" if code[0] != "7" else "8") + code[1:16]
    forged = forged_body + codes.check_char(forged_body)  # well formed, never issued
    for typed in (forged, code[:-1] + ("0" if code[-1] != "0" else "1"), "", "x" * 17, code[:10]):
        with pytest.raises(SscardError) as err:
            certificates.verify_certificate(app, certificates.VERIFY_GATEWAY, typed)
        assert err.value.code == "certificate_not_found"
        assert "没有找到" in err.value.message("zh") and "not found" in err.value.message("en").lower()
    with app.db.session() as s:
        row = s.scalar(select(Certificate))
        assert code not in str(vars(row)) and row.code_tail == code[-4:]
        records = s.scalars(select(AuditRecord).where(AuditRecord.operation == "certificates.issue")).all()
        assert len(records) == 1 and code not in str(vars(records[0]))
        assert records[0].person_id == holder.person_id


def test_guessing_codes_from_one_address_is_refused_before_the_look_up(city, app, holder):
    issued = certificates.issue_certificate(app, city.cardholder(holder))
    limit = app.policy.login.client_failures_per_minute
    for i in range(limit):
        body = f"{i:016d}".translate(str.maketrans("0123456789", "ABCDEFGHJK"))
        with pytest.raises(SscardError) as err:
            certificates.check_code(app, "203.0.113.9", body + codes.check_char(body))
        assert err.value.code == "certificate_not_found"
    with pytest.raises(SscardError) as err:
        certificates.check_code(app, "203.0.113.9", issued["code"])  # even the right code, while over
    assert err.value.code == "too_many_attempts"
    assert certificates.check_code(app, "203.0.113.10", issued["code"])["genuine"] is True  # others unaffected


def test_each_check_is_in_the_cardholders_access_log(city, app, holder, client):
    issued = certificates.issue_certificate(app, city.cardholder(holder))
    certificates.check_code(app, "198.51.100.7", issued["code"])
    login_changed(client, holder)
    page = client.get("/portal/access").text
    assert "参保证明被第三方凭验证码核验" in page and "持证明的第三方（凭验证码）" in page


def test_the_portal_downloads_a_pdf_whose_code_the_public_page_confirms(client, city, app, holder):
    login_changed(client, holder)
    page = client.get("/portal/certificate")
    assert page.status_code == 200 and 'value="2024-03"' in page.text and 'value="2025-06"' in page.text
    pdf = client.post("/portal/certificate", data={"csrf_token": csrf(page.text), "period_from": "2024-03",
                                                   "period_to": "2025-06"})
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and "attachment" in pdf.headers["content-disposition"]
    assert client.post("/portal/certificate", data={"period_from": "2024-03"}).status_code == 403  # CSRF
    with app.db.session() as s:
        tail = s.scalar(select(Certificate.code_tail))
    assert f"…{tail}" in client.get("/portal/certificate").text
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", "-", "-"], input=pdf.content, capture_output=True, check=True).stdout
        text = text.decode()
        assert "参保缴费证明" in text and "蒋文静" in text and "http://testserver/portal/verify" in text
        code = next(w for w in text.split() if len(w) == 21 and w.count("-") == 4)
        client.cookies.clear()  # the third party is nobody signed in
        answer = client.post("/portal/verify", data={"code": code})
        assert answer.status_code == 200 and "真实有效" in answer.text and "蒋**" in answer.text
        assert "蒋文静" not in answer.text and holder.citizen_id not in answer.text
        by_qr = client.get(f"/portal/verify?code={code.replace('-', '')}&lang=en")
        assert "genuine" in by_qr.text.lower() and "16 months" in by_qr.text
    wrong = client.post("/portal/verify", data={"code": "ABCD-EFGH-JKMN-PQRS-T"})
    assert wrong.status_code == 404 and "没有找到" in wrong.text and "真实有效" not in wrong.text


def test_the_public_page_answers_429_with_retry_after_once_an_address_guessed_too_often(client, city, app, holder):
    issued = certificates.issue_certificate(app, city.cardholder(holder))
    for i in range(app.policy.login.client_failures_per_minute):
        body = f"{i:016d}".translate(str.maketrans("0123456789", "MNPQRSTVWX"))
        assert client.post("/portal/verify", data={"code": body + codes.check_char(body)}).status_code == 404
    refused = client.get(f"/portal/verify?code={issued['code']}")  # the QR code's address is counted too
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert "真实有效" not in refused.text and "蒋**" not in refused.text


def test_the_printed_check_address_is_the_configured_public_url_whatever_host_the_request_names(
        settings, clock, city, holder):
    """Session 24's probe: behind a proxy that passes any Host, `Host: evil.example` put
    http://evil.example/portal/verify on the certificate and in its QR code. With SSCARD_PUBLIC_URL set,
    the certificate names that address only."""
    import dataclasses

    from fastapi.testclient import TestClient

    from sscard.composition import create_app
    from sscard.core.policy import load_policy
    from sscard.services.app import build_app

    public = build_app(dataclasses.replace(settings, public_url="https://sscard.example.cn"), clock=clock,
                       policy=load_policy(), pool_size=2)
    try:
        with TestClient(create_app(public)) as client:
            login_changed(client, holder)
            page = client.get("/portal/certificate", headers={"host": "evil.example"})
            assert page.status_code == 200
            assert "https://sscard.example.cn/portal/verify" in page.text and "evil.example" not in page.text
    finally:
        public.close()


def test_the_public_url_setting_is_a_base_url_or_start_up_stops(monkeypatch):
    from sscard.config import Settings, SettingsError

    monkeypatch.setenv("SSCARD_PUBLIC_URL", "https://sscard.example.cn/")
    monkeypatch.delenv("SSCARD_HOTLINE_PUBLIC_URL", raising=False)
    got = Settings.from_env()
    assert got.public_url == "https://sscard.example.cn" and got.hotline_public_url == "https://sscard.example.cn"
    monkeypatch.setenv("SSCARD_PUBLIC_URL", "javascript:alert(1)")
    with pytest.raises(SettingsError, match="SSCARD_PUBLIC_URL"):
        Settings.from_env()
