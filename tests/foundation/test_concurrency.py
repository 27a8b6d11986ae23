"""Racing requests through the operation frame, on both databases: twins of one keyed request apply
once, two registrations of one person give one person and a clean refusal, and concurrent wrong
passwords are all counted."""

from __future__ import annotations

import threading
from datetime import date

from sqlalchemy import func, select

from sscard.core.errors import SscardError
from sscard.core.identifiers import make_citizen_id
from sscard.models.foundation import AuditRecord, Card, Person
from sscard.services import enrolment, passwords
from tests.support import City


def race(n: int, fn) -> list:
    """Run fn(i) in n threads started together; answers (or the SscardError raised) in order."""
    start = threading.Barrier(n, timeout=30)
    out: list = [None] * n

    def worker(i: int) -> None:
        start.wait()
        try:
            out[i] = fn(i)
        except SscardError as err:
            out[i] = err
        except BaseException as exc:  # noqa: BLE001 - any other error fails the test below
            out[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return out


def _count(app, model, *where) -> int:
    with app.db.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_twin_keyed_requests_apply_once_and_answer_alike(city, app):
    clerk = city.actor("clerk")
    for round_ in range(3):
        cid = make_citizen_id("330106", date(1985, 4, 4), 101 + 2 * round_)
        answers = race(2, lambda _i, cid=cid, r=round_: enrolment.register_person(
            app, clerk, cid, "孙七", idempotency_key=f"twin-{r}"))
        assert all(isinstance(a, dict) for a in answers), answers
        assert answers[0] == answers[1]
        assert _count(app, Person, Person.citizen_id == cid) == 1
        assert _count(app, AuditRecord, AuditRecord.idempotency_key == f"twin-{round_}") == 1


def test_two_registrations_of_one_person_give_one_person_and_one_clean_refusal(city, app):
    clerk, csup = city.actor("clerk"), city.actor("csup")
    cid = make_citizen_id("330106", date(1985, 4, 4), 201)
    answers = race(2, lambda i: enrolment.register_person(app, (clerk, csup)[i], cid, "周八"))
    kinds = sorted(type(a).__name__ for a in answers)
    assert kinds == ["SscardError", "dict"], answers
    refusal = next(a for a in answers if isinstance(a, SscardError))
    assert refusal.code == "already_exists"
    assert _count(app, Person, Person.citizen_id == cid) == 1


def test_concurrent_wrong_passwords_are_all_counted(make_app):
    app = make_app(ss_password={"max_failures": 10})
    city = City(app)
    card = city.issued_card()
    holder = city.cardholder(card)
    answers = race(4, lambda _i: passwords.verify_ss_password(app, holder, card.card_number, "999999"))
    assert [a.code for a in answers] == ["wrong_password"] * 4
    with app.db.session() as s:
        assert s.scalar(select(Card.ss_pw_failures).where(Card.card_number == card.card_number)) == 4
