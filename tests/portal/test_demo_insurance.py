"""The demo's contribution histories: bounded, plausible, readable through the service."""

import random
from datetime import date

from sscard.core.roles import SYSTEM_ACTOR
from sscard.demo import insurance as demo
from sscard.services import insurance


def test_populate_gives_bounded_histories_that_the_service_reads(city, app):
    people = [city.issued_card(f"张{i}") for i in range(3)]
    out = demo.populate(app.db.engine, random.Random(3), date(2026, 11, 25), max_people=2, always_first=1,
                        months=14, employers=5)
    assert out["people"] == 2 and out["employers"] == 5 and out["months"] == 14
    assert 0 < out["contributions"] <= 2 * 14 * 5
    seen = 0
    for card in people:
        data = insurance.contribution_records(app, SYSTEM_ACTOR, card.person_id)
        if not data["rows"]:
            continue
        seen += 1
        months = {r["month"] for r in data["rows"]}
        assert max(months) == "2026-10" or len(months) < 14  # ends with the month before today
        assert min(months) >= "2025-09"
        for r in data["rows"]:
            assert (r["employer_fen"], r["personal_fen"]) == insurance.amounts_for(r["insurance_type"], r["base_fen"])
            assert 400_000 <= r["base_fen"] <= 2_500_000
    assert seen == 2
    assert insurance.contribution_records(app, SYSTEM_ACTOR, people[0].person_id)["rows"]  # the first is always in


def test_generated_employer_codes_carry_a_valid_check_character():
    rng = random.Random(5)
    for _ in range(20):
        code = demo.uscc(rng)
        assert len(code) == 18
        total = sum(demo._USCC_CHARS.index(c) * w for c, w in zip(code[:17], demo._USCC_WEIGHTS, strict=True))
        assert (total + demo._USCC_CHARS.index(code[17])) % 31 == 0
