"""N demo cardholders, their cards and the bank accounts behind them, generated from a seed, loaded in bulk.

Deterministic: everything here comes from `random.Random("sscard-demo:<seed>:people")` and the city's
codes, so the same seed gives the same people, citizen IDs, card numbers, identification codes and PANs
(the dates are counted back from the clock's now). Names are drawn from Faker's zh_CN name data with that
seeded generator; citizen IDs use Beijing district codes (valid for every birth year) and carry the
person's birth date and sex (odd sequence = male).

The cards are in a realistic mix of states on both sides (see SCENARIOS). People are not registered one
operation at a time (100,000 people would take an hour): they are inserted with SQLAlchemy Core
`insert` executemany, in chunks, one transaction per chunk. Instead of one audit record per person, each
chunk writes ONE summary audit record (operation "demo.load") in the same transaction, naming the range
of person ids it loaded. The next chunk is generated in a thread while one is inserted, and values are
handed over in the database's own form (BulkTable), which is what makes 100,000 people a matter of
seconds rather than minutes.

Bank accounts the demo shows as active have a demo bank PIN (see DEMO_BANK_PINS), kept as the same keyed
HMAC the bank side uses; cards keep the initial SS password 123456 and people their initial query
password (last 6 of the first card number), so no secret is stored in clear.
"""

from __future__ import annotations

import queue
import random
import threading
from bisect import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from operator import mul

from faker.providers.person.zh_CN import Provider as ZhNames
from sqlalchemy import Date, column, func, insert, select, table, text, update

from ..core.clock import shanghai_day
from ..core.identifiers import IDENT_MIDDLE
from ..core.passwords import initial_query_password
from ..core.roles import CLI_OPERATOR
from ..core.states import BankStatus as B
from ..core.states import SsStatus as S
from ..models.base import UtcDateTime
from ..models.foundation import (
    AuditRecord,
    Bank,
    BankAccount,
    Card,
    Outlet,
    Person,
    ProductionBatch,
    ServiceCenter,
)
from ..services.app import App
from ..services.cards import add_years
from ..services.production import add_working_days
from .bulk import bulk_insert

BANK_PIN_PURPOSE = "bank_pin"  # HMAC purpose of the bank PIN; the subject is the PAN
# Demo bank PINs, for accounts shown as active: the first one that is not weak for the person.
DEMO_BANK_PINS = ("147258", "258369", "369147", "741852")

# Beijing districts: (division code, name, weight). Codes in use since the first GB/T 2260 (1980), so an
# ID with them is right for every birth year (people born before 1980 were given them later).
DISTRICTS = (
    ("110101", "东城区", 8),
    ("110102", "西城区", 10),
    ("110105", "朝阳区", 25),
    ("110106", "丰台区", 15),
    ("110107", "石景山区", 4),
    ("110108", "海淀区", 22),
    ("110109", "门头沟区", 4),
)
STREETS = ("长安街", "建国路", "中关村大街", "学院路", "朝阳北路", "丰台北路", "阜成路", "西直门外大街", "通惠河北路")

# (scenario, weight): what happened to a person's card(s). The weights give the mix of states.
SCENARIOS = (
    ("applied", 2.0),  # first card applied for, not yet in production
    ("in_production", 2.0),
    ("ready", 2.5),  # ready at the center, not collected
    ("sealed", 0.5),  # never collected within a year
    ("normal", 82.0),  # in use; the bank side varies (NORMAL_BANK)
    ("temporary_loss", 2.0),  # reported by 12333/portal; some have lapsed (for `sscard sweep`)
    ("formal_loss", 2.0),  # reported at a window
    ("replaced", 5.0),  # old card cancelled, replacement collected
    ("replacement_pending", 2.0),  # lost (formal loss) or damaged, replacement applied for
)
NORMAL_BANK = (
    ("active", 76.0),
    ("not_activated_open", 10.0),  # collected less than 60 days ago
    ("not_activated_expired", 7.0),  # the activation window has run out
    ("oral_loss", 2.5),  # by the bank's hotline; some have lapsed
    ("written_loss", 3.5),
    ("frozen", 1.0),
)
REPLACEMENT_REASONS = (("lost", 50.0), ("damaged", 30.0), ("expiring", 15.0), ("bank_change", 5.0))
SAMPLE_LABELS = {
    "normal/not_activated": "card in use, bank side to be activated at an outlet",
    "normal/active": "card in use, bank account active",
    "temporary_loss": "SS side temporarily reported lost (12333/portal)",
    "replaced": "old card cancelled, replacement card in use",
    "replacement_pending": "old card lost (formal loss), replacement applied for",
    "normal/oral_loss": "bank side reported lost by the bank hotline",
}
DAY = 86400
FEMININE = {"红霞"}  # in Faker's zh_CN male list, but a woman's name


_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LUHN_DOUBLE = tuple((2 * d) - 9 if 2 * d > 9 else 2 * d for d in range(10))


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CARD_DIGIT_WEIGHTS = (7, 9, 10, 5, 8, 4, 2)


def citizen_id(area: str, birth: date, sequence: int) -> str:
    """core.identifiers.make_citizen_id, faster (GB 11643 check char; the tests validate every one)."""
    first17 = f"{area}{birth.year:04d}{birth.month:02d}{birth.day:02d}{sequence:03d}"
    return first17 + "10X98765432"[sum(map(mul, map(int, first17), _ID_WEIGHTS)) % 11]


def card_number(letter_index: int, digits7: int) -> str:
    """A letter and seven digits with the card number's check char (as core.identifiers computes it)."""
    body = f"{digits7:07d}"
    c = 11 - (3 * (10 + letter_index) + sum(map(mul, map(int, body), _CARD_DIGIT_WEIGHTS))) % 11
    return f"{_LETTERS[letter_index]}{body}{'X' if c == 10 else '0' if c == 11 else c}"


def luhn_digit(body: str) -> str:
    """The Luhn check digit appended to `body` (the PAN's last digit)."""
    digits = [ord(c) - 48 for c in reversed(body)]
    total = sum(_LUHN_DOUBLE[d] for d in digits[0::2]) + sum(digits[1::2])
    return str(-total % 10)


def demo_pin(citizen_id: str) -> str:
    """The demo bank PIN of an active account: the first of DEMO_BANK_PINS that is not weak for this person.

    None of them is a run, a repeat or a date (their months 47/72/58/83/69/91/18/85 do not exist), so
    the only way one is weak is being six digits of the citizen ID."""
    return next((p for p in DEMO_BANK_PINS if p not in citizen_id), DEMO_BANK_PINS[-1])


class Weighted:
    """Draw from (value, weight) pairs with one uniform number."""

    def __init__(self, pairs):
        self.values = [v for v, _w in pairs]
        self.cum = list(accumulate(w for _v, w in pairs))

    def pick(self, rng: random.Random):
        return self.values[bisect(self.cum, rng.random() * self.cum[-1])]


@dataclass
class CityRefs:
    """Ids of the city's banks, outlets, centers and the demo's production batches."""

    banks: list[tuple[int, str, str]]  # (id, code, BIN)
    outlets: dict[int, list[int]]  # bank id -> outlet ids
    centers: list[tuple[int, str, str, bool]]  # (id, code, area code, instant issue)
    batches: dict[tuple[int, str], int] = field(default_factory=dict)  # (center id, status) -> batch id


@dataclass
class Chunk:
    persons: list[dict] = field(default_factory=list)
    cards: list[dict] = field(default_factory=list)  # first cards (and old cards)
    replacements: list[dict] = field(default_factory=list)  # cards replacing one in `cards`
    accounts: list[dict] = field(default_factory=list)


class PeopleGenerator:
    """Generates people one after another from the seed; ids are handed out in order."""

    def __init__(self, seed: int, now: datetime, refs: CityRefs, app: App):
        self.rng = random.Random(f"sscard-demo:{seed}:people")
        self.now = now
        self.refs = refs
        self.policy = app.policy
        self.secrets = app.secrets
        self.window = timedelta(days=app.policy.activation.window_days)
        self.validity = app.policy.card.validity_years
        self.spec = app.policy.card.spec_version
        self.oral_days = app.policy.bank_loss.oral_days
        self.temp_days = app.policy.ss_loss.temporary_days
        self.next_person = 1
        self.next_card = 1
        self.next_account = 1
        self.used_ids: set[str] = set()
        self.used_cards: set[str] = set()
        self.used_idents: set[str] = set()
        self.used_pans: set[str] = set()
        self.samples: dict[str, dict] = {}
        self.scenario = Weighted(SCENARIOS)
        self.normal_bank = Weighted(NORMAL_BANK)
        self.reasons = Weighted(REPLACEMENT_REASONS)
        self.temp_bank = Weighted((("active", 7), ("not_activated", 2), ("oral_loss", 1)))
        self.formal_bank = Weighted((("active", 5), ("not_activated", 1), ("written_loss", 4)))
        self.old_bank = Weighted((("active", 8), ("not_activated", 1), ("written_loss", 3)))
        self.district = Weighted([(d[:2], d[2]) for d in DISTRICTS])
        self.bank = Weighted([(b, 55.0 if i == 0 else 45.0) for i, b in enumerate(refs.banks)])
        self.center = Weighted([(c, 2.0 if c[3] else 3.0) for c in refs.centers])
        self.producing_centers = [c for c in refs.centers if not c[3]] or refs.centers
        last = list(ZhNames.last_names.items())
        self.last_names = Weighted(last)
        self.first_male = [n for n in ZhNames.first_names_male if n not in FEMININE]
        self.first_female = list(ZhNames.first_names_female)
        self.birth_low = date(1935, 1, 1).toordinal()
        self.birth_high = date(2020, 12, 31).toordinal()
        self.birth_mode = date(1975, 6, 1).toordinal()

    # ------------------------------------------------------------ small helpers

    def ago(self, low_days: float, high_days: float) -> datetime:
        return self.now - timedelta(seconds=int(self.rng.uniform(low_days, high_days) * DAY))

    def after(self, start: datetime, low_days: float, high_days: float) -> datetime:
        """A time between start+low and start+high days, never after now."""
        when = start + timedelta(seconds=int(self.rng.uniform(low_days, high_days) * DAY))
        return min(when, self.now - timedelta(minutes=1))

    def name(self, male: bool) -> str:
        given = self.first_male if male else self.first_female
        first = self.rng.choice(given)
        if len(first) == 1 and self.rng.random() < 0.55:
            first += self.rng.choice(given)[0]
        return self.last_names.pick(self.rng) + first

    def citizen_id(self, area: str, birth: date, male: bool) -> str:
        while True:
            seq = self.rng.randrange(500) * 2 + (1 if male else 0)
            cid = citizen_id(area, birth, seq)
            if cid not in self.used_ids:
                self.used_ids.add(cid)
                return cid

    def numbers(self, area: str, bin_: str) -> tuple[str, str, str]:
        """A card number, identification code and PAN, none used before (fast forms of the core makers)."""
        rng = self.rng
        while True:
            number = card_number(rng.randrange(26), rng.randrange(10**7))
            if number not in self.used_cards:
                break
        self.used_cards.add(number)
        while True:
            ident = f"{area}{IDENT_MIDDLE}{rng.getrandbits(64):016X}"
            if ident not in self.used_idents:
                break
        self.used_idents.add(ident)
        while True:
            body = f"{bin_}{rng.randrange(10**12):012d}"
            pan = body + luhn_digit(body)
            if pan not in self.used_pans:
                break
        self.used_pans.add(pan)
        return number, ident, pan

    def timeline(self, center, collected: datetime) -> tuple[datetime, datetime]:
        """(applied, ready) for a card collected at `collected` from `center`."""
        if center[3]:  # instant issue: made while the cardholder waits
            ready = collected - timedelta(minutes=self.rng.randint(5, 40))
            return ready - timedelta(minutes=self.rng.randint(5, 30)), ready
        ready = collected - timedelta(seconds=int(self.rng.uniform(0.1, 30) * DAY))
        return ready - timedelta(days=21 + self.rng.randint(0, 4)), ready

    # ------------------------------------------------------------ rows

    def card(self, person_id: int, area: str, bank, center, *, status: str, reason: str = "first",
             replaces: int | None = None, applied: datetime, ready: datetime | None = None,
             collected: datetime | None = None, changed: datetime | None = None,
             loss_expires: datetime | None = None, batch: str | None = None) -> tuple[dict, dict]:
        """A card row and its bank account row (not activated; `bank_side` sets the account's state)."""
        number, ident, pan = self.numbers(area, bank[2])
        card_id = self.next_card
        self.next_card += 1
        issue = shanghai_day(collected) if collected else None
        card = {
            "id": card_id, "person_id": person_id, "card_number": number, "ident_code": ident,
            "bank_id": bank[0], "ss_status": status, "reason": reason, "replaces_card_id": replaces,
            "spec_version": self.spec, "apply_center_id": center[0],
            "ready_center_id": center[0] if ready else None,
            "batch_id": self.refs.batches.get((center[0], batch)) if batch else None,
            "applied_at": applied, "ready_at": ready, "collected_at": collected,
            "issue_date": issue, "expiry_date": add_years(issue, self.validity) if issue else None,
            "status_changed_at": changed or collected or ready or applied, "loss_expires_at": loss_expires,
            "ss_pw_digest": None, "ss_pw_failures": 0, "ss_pw_locked": False, "version": 1,
        }
        account = {
            "id": self.next_account, "card_id": card_id, "person_id": person_id, "bank_id": bank[0], "pan": pan,
            "status": B.NOT_ACTIVATED, "activation_deadline": issue + self.window if issue else None,
            "window_extended": False, "activated_at": None, "activated_outlet_id": None, "pin_digest": None,
            "pin_failures": 0, "pin_locked_until": None, "pin_locked": False, "pin_failed_at": None, "loss_expires_at": None,
            "status_changed_at": card["status_changed_at"], "ledger_account_id": None, "version": 1,
        }
        self.next_account += 1
        return card, account

    def activate(self, account: dict, collected: datetime, cid: str, birth: date, until: datetime | None = None) -> datetime:
        """The cardholder activated the bank side within the window and set a demo PIN."""
        latest = min(self.window.days - 0.1, ((until or self.now) - collected).total_seconds() / DAY)
        when = collected + timedelta(seconds=int(self.rng.uniform(0, max(0.0, latest)) * DAY))
        pin = demo_pin(cid)
        account.update(
            status=B.ACTIVE, activated_at=when, status_changed_at=when,
            activated_outlet_id=self.rng.choice(self.refs.outlets[account["bank_id"]]),
            pin_digest=self.secrets.pin_digest(BANK_PIN_PURPOSE, account["pan"], pin),
        )
        account["_pin"] = pin  # for the sample cardholders only; dropped before insert
        return when

    def bank_side(self, account: dict, state: str, collected: datetime, cid: str, birth: date,
                  loss_at: datetime | None = None) -> None:
        """Put an account of a collected card in `state` (active, oral_loss, written_loss, frozen, not_activated)."""
        if state == "not_activated":
            return
        activated = self.activate(account, collected, cid, birth, until=loss_at)
        if state == "active":
            return
        at = loss_at or self.after(activated, 0, max(0.0, (self.now - activated).total_seconds() / DAY))
        account.update(status=state, status_changed_at=at)
        if state == B.ORAL_LOSS:
            account["loss_expires_at"] = at + timedelta(days=self.oral_days)

    # ------------------------------------------------------------ one person

    def person(self, chunk: Chunk) -> None:
        rng = self.rng
        pid = self.next_person
        self.next_person += 1
        male = rng.random() < 0.5
        area, district = self.district.pick(rng)
        birth = date.fromordinal(int(rng.triangular(self.birth_low, self.birth_high, self.birth_mode)))
        cid = self.citizen_id(area, birth, male)
        name = self.name(male)
        scenario = self.scenario.pick(rng)
        bank = self.bank.pick(rng)
        center = self.center.pick(rng)
        first_number = None
        cards: list[dict] = []
        new_cards: list[dict] = []
        accounts: list[dict] = []
        key = scenario

        if scenario in ("applied", "in_production", "ready", "sealed"):
            if scenario in ("applied", "in_production"):
                center = rng.choice(self.producing_centers)
            if scenario == "applied":
                card, acc = self.card(pid, area, bank, center, status=S.APPLIED, applied=self.ago(0, 3))
            elif scenario == "in_production":
                applied = self.ago(3, 20)
                card, acc = self.card(pid, area, bank, center, status=S.IN_PRODUCTION, applied=applied,
                                      changed=applied + timedelta(days=1), batch="in_production")
            else:
                ready = self.ago(1, 300) if scenario == "ready" else self.ago(380, 700)
                applied = ready - timedelta(days=21) if not center[3] else ready - timedelta(minutes=20)
                status = S.READY if scenario == "ready" else S.SEALED
                sealed_at = ready + timedelta(days=self.policy.card.uncollected_seal_days)
                card, acc = self.card(pid, area, bank, center, status=status, applied=applied, ready=ready,
                                      changed=sealed_at if status == S.SEALED else ready,
                                      batch="ready" if status == S.READY else None)
            cards.append(card)
            accounts.append(acc)

        elif scenario == "normal":
            state = self.normal_bank.pick(rng)
            if state == "not_activated_open":
                collected = self.ago(0.05, self.window.days - 1)
            elif state == "not_activated_expired":
                collected = self.ago(self.window.days + 1, 3640)
            else:
                collected = self.ago(1, 3640)
            applied, ready = self.timeline(center, collected)
            card, acc = self.card(pid, area, bank, center, status=S.NORMAL, applied=applied, ready=ready,
                                  collected=collected)
            loss_at = None
            if state == "oral_loss":
                loss_at = self.ago(0, self.oral_days + 1.5)
                loss_at = max(loss_at, collected + timedelta(hours=1))
            bank_state = "not_activated" if state.startswith("not_activated") else state
            self.bank_side(acc, bank_state, collected, cid, birth, loss_at=loss_at)
            key = f"normal/{'not_activated' if state == 'not_activated_open' else bank_state}"
            if state == "oral_loss" and acc["loss_expires_at"] <= self.now:
                key = "normal/oral_loss_lapsed"
            first_number = card["card_number"]
            cards.append(card)
            accounts.append(acc)

        elif scenario in ("temporary_loss", "formal_loss"):
            collected = self.ago(30, 3640)
            applied, ready = self.timeline(center, collected)
            if scenario == "temporary_loss":
                reported = self.ago(0, self.temp_days + 2)
                card, acc = self.card(pid, area, bank, center, status=S.TEMPORARY_LOSS, applied=applied,
                                      ready=ready, collected=collected, changed=reported,
                                      loss_expires=reported + timedelta(days=self.temp_days))
                if card["loss_expires_at"] <= self.now:
                    key = "temporary_loss_lapsed"
                bank_state = self.temp_bank.pick(rng)
            else:
                reported = max(self.ago(0, 200), collected + timedelta(hours=2))
                card, acc = self.card(pid, area, bank, center, status=S.FORMAL_LOSS, applied=applied,
                                      ready=ready, collected=collected, changed=reported)
                bank_state = self.formal_bank.pick(rng)
            self.bank_side(acc, bank_state, collected, cid, birth,
                           loss_at=reported if bank_state.endswith("_loss") else None)
            first_number = card["card_number"]
            cards.append(card)
            accounts.append(acc)

        else:  # replaced / replacement_pending: an old card and a new one
            reason = self.reasons.pick(rng)
            pending = scenario == "replacement_pending"
            if pending:
                reason = "lost" if rng.random() < 0.8 else "damaged"
                rep_applied = self.ago(0, 30)
            else:
                rep_applied = self.ago(50, 380)
            if reason == "expiring":
                old_collected = rep_applied - timedelta(days=365 * self.validity - rng.randint(0, 60))
            else:
                old_collected = rep_applied - timedelta(days=rng.randint(60, 3000))
            old_center = self.center.pick(rng)
            applied, ready = self.timeline(old_center, old_collected)
            old_card, old_acc = self.card(pid, area, bank, old_center, status=S.NORMAL, applied=applied,
                                          ready=ready, collected=old_collected)
            lost_at = rep_applied - timedelta(hours=rng.randint(0, 72))
            old_bank_state = self.old_bank.pick(rng)
            if reason != "lost" and old_bank_state == "written_loss":
                old_bank_state = "active"
            self.bank_side(old_acc, old_bank_state, old_collected, cid, birth,
                           loss_at=lost_at if old_bank_state == "written_loss" else None)
            new_bank = bank
            if reason == "bank_change":
                new_bank = next((b for b in self.refs.banks if b[0] != bank[0]), bank)
            first_number = old_card["card_number"]
            if pending:
                if reason == "lost":
                    old_card.update(ss_status=S.FORMAL_LOSS, status_changed_at=lost_at)
                age = (self.now - rep_applied).total_seconds() / DAY
                if center[3]:
                    status, batch, ready_new = S.READY, "ready", rep_applied + timedelta(minutes=20)
                elif age < 3:
                    status, batch, ready_new = S.APPLIED, None, None
                elif age < 22:
                    status, batch, ready_new = S.IN_PRODUCTION, "in_production", None
                else:
                    status, batch, ready_new = S.READY, "ready", rep_applied + timedelta(days=21)
                new_card, new_acc = self.card(pid, area, new_bank, center, status=status, reason=reason,
                                              replaces=old_card["id"], applied=rep_applied, ready=ready_new,
                                              changed=ready_new or rep_applied, batch=batch)
                key = "replacement_pending" if reason == "lost" else "replacement_pending/damaged"
            else:
                new_ready = rep_applied + timedelta(days=21 + rng.randint(0, 4))
                if center[3]:
                    new_ready = rep_applied + timedelta(minutes=20)
                new_collected = self.after(new_ready, 0, 20)
                new_card, new_acc = self.card(pid, area, new_bank, center, status=S.NORMAL, reason=reason,
                                              replaces=old_card["id"], applied=rep_applied, ready=new_ready,
                                              collected=new_collected)
                old_card.update(ss_status=S.CANCELLED, status_changed_at=new_collected)
                if rng.random() < 0.7:  # activated: the old account's balance moved over, old account closed
                    activated = self.activate(new_acc, new_collected, cid, birth)
                    old_acc.update(status=B.CLOSED, status_changed_at=activated, loss_expires_at=None)
                key = "replaced"
            cards.append(old_card)
            accounts.append(old_acc)
            new_cards.append(new_card)
            accounts.append(new_acc)

        created = min(c["applied_at"] for c in cards)
        person = {
            "id": pid, "citizen_id": cid, "name": name, "sex": "M" if male else "F", "birth_date": birth,
            "phone": f"1{rng.choice('3589')}{rng.randrange(10**9):09d}",
            "address": f"北京市{district}{rng.choice(STREETS)}{rng.randint(1, 300)}号",
            "area_code": area, "first_card_number": first_number, "query_pw_hash": None,
            "query_pw_initial": True, "query_pw_failures": 0, "query_pw_locked_until": None,
            "created_at": created,
        }
        if key in SAMPLE_LABELS and key not in self.samples:
            self.samples[key] = self.sample(key, person, cards + new_cards, accounts)
        for acc in accounts:
            acc.pop("_pin", None)
        chunk.persons.append(person)
        chunk.cards.extend(cards)
        chunk.replacements.extend(new_cards)
        chunk.accounts.extend(accounts)

    def sample(self, key: str, person: dict, cards: list[dict], accounts: list[dict]) -> dict:
        """A cardholder a tester can use: unmasked numbers and initial passwords (demo output only)."""
        card, account = cards[-1], accounts[-1]
        out = {
            "label": SAMPLE_LABELS[key],
            "person_id": person["id"],
            "name": person["name"],
            "citizen_id": person["citizen_id"],
            "sex": person["sex"],
            "birth_date": person["birth_date"].isoformat(),
            "card_number": card["card_number"],
            "ident_code": card["ident_code"],  # on the chip: what a hospital's card reader sends (medical API)
            "pan": account["pan"],
            "bank": next(b[1] for b in self.refs.banks if b[0] == card["bank_id"]),
            "ss_status": str(card["ss_status"]),
            "bank_status": str(account["status"]),
            "query_password": initial_query_password(self.policy, person["first_card_number"],
                                                     person["citizen_id"]),
            "ss_password": "123456",
            "bank_pin": account.get("_pin"),
            "phone": person.get("phone", ""),  # the bank hotline's second item when the PIN is not known
        }
        if len(cards) > 1:
            out["old_card_number"] = cards[0]["card_number"]
            out["old_card_ss_status"] = str(cards[0]["ss_status"])
            out["old_pan"] = accounts[0]["pan"]
            out["old_bank_status"] = str(accounts[0]["status"])
        return out

    def chunk(self, n: int) -> Chunk:
        chunk = Chunk()
        for _ in range(n):
            self.person(chunk)
        return chunk


# ---------------------------------------------------------------- the city's ids and production batches


def city_refs(app: App) -> CityRefs:
    with app.db.session() as s:
        banks = [(b.id, b.code, b.bin) for b in s.scalars(select(Bank).order_by(Bank.code))]
        outlets: dict[int, list[int]] = {b[0]: [] for b in banks}
        for o in s.scalars(select(Outlet).order_by(Outlet.code)):
            outlets.setdefault(o.bank_id, []).append(o.id)
        centers = [(c.id, c.code, c.area_code, c.instant_issue)
                   for c in s.scalars(select(ServiceCenter).order_by(ServiceCenter.code))]
    if not banks or not centers or any(not ids for ids in outlets.values()):
        raise RuntimeError("the demo city needs banks with outlets and service centers first")
    return CityRefs(banks, outlets, centers)


def _audit_row(now: datetime, object_type: str, object_id: str, **detail) -> dict:
    """The one summary audit record of a bulk step (operation demo.load), by the CLI operator."""
    actor = CLI_OPERATOR
    return {
        "at": now, "actor_kind": actor.kind, "actor_id": actor.id, "actor_role": str(actor.role),
        "on_behalf_of": None, "attorney_id": None, "channel": str(actor.channel), "place": "",
        "operation": "demo.load", "object_type": object_type, "object_id": object_id, "person_id": None,
        "before": "", "after": "loaded", "result": "ok", "idempotency_key": None, "detail": detail,
    }


def make_batches(app: App, refs: CityRefs, seed: int) -> None:
    """One production batch in the factory per producing center and one back (ready) per center."""
    now = app.clock.now()
    today = app.clock.today()

    def work(session):
        conn = session.connection()
        made = 0
        for center_id, code, _area, instant in refs.centers:
            for status in (("ready",) if instant else ("in_production", "ready")):
                batch_code = f"DEMO-{code}-{'P' if status == 'in_production' else 'R'}"
                existing = conn.scalar(select(ProductionBatch.id).where(ProductionBatch.code == batch_code))
                if existing is None:
                    created = now - timedelta(days=10 if status == "in_production" else 30)
                    working = 0 if instant else app.policy.production.working_days
                    conn.execute(insert(ProductionBatch.__table__).values(
                        code=batch_code, center_id=center_id, status=status, card_count=0, created_at=created,
                        due_date=add_working_days(shanghai_day(created), working),
                        completed_at=None if status == "in_production" else created + timedelta(days=21)))
                    existing = conn.scalar(select(ProductionBatch.id).where(ProductionBatch.code == batch_code))
                    made += 1
                refs.batches[(center_id, status)] = existing
        if made:
            conn.execute(insert(AuditRecord.__table__), [_audit_row(now, "production_batch", "demo", batches=made,
                                                                    seed=seed, today=today.isoformat())])

    app.db.run(work)


# ---------------------------------------------------------------- the bulk load


def _max_id(conn, table) -> int:
    return conn.scalar(select(func.coalesce(func.max(table.c.id), 0)))


class BulkTable:
    """A table for the bulk load: a bare Core table clause (no per-value type processing, which costs
    three times what SQLite's own inserting does) fed with values already in the database's form.

    What the model's types would do is done here once per value: UTC datetimes (aware for PostgreSQL's
    timestamptz; naive text `YYYY-MM-DD HH:MM:SS.ffffff` for SQLite, as SQLAlchemy stores them) and
    dates (ISO text for SQLite)."""

    def __init__(self, model_table, dialect: str):
        self.clause = table(model_table.name, *[column(c.name) for c in model_table.columns])
        self.sqlite = dialect == "sqlite"
        self.datetimes = [c.name for c in model_table.columns if isinstance(c.type, UtcDateTime)]
        self.dates = [c.name for c in model_table.columns if isinstance(c.type, Date)]

    def insert(self, conn, rows: list[dict]) -> None:
        bulk_insert(conn, self.clause, rows)

    def prepare(self, rows: list[dict]) -> list[dict]:
        if not self.sqlite:
            return rows
        for row in rows:
            for key in self.datetimes:
                value = row[key]
                if value is not None:
                    row[key] = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
            for key in self.dates:
                value = row[key]
                if value is not None:
                    row[key] = value.isoformat()
        return rows


def _generated(gen: PeopleGenerator, people: int, chunk_size: int,
               prepare: Callable[[Chunk], None]) -> Iterator[Chunk]:
    """The chunks in order, generated one ahead in a thread while the previous one is inserted.

    One generator makes every chunk in turn, so the result is the same as generating in line; the
    database driver lets go of the GIL while it works, so generating and inserting overlap."""
    out: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        try:
            done = 0
            while done < people and not stop.is_set():
                n = min(chunk_size, people - done)
                item: object = gen.chunk(n)
                prepare(item)  # type: ignore[arg-type]
                done += n
                while not stop.is_set():
                    try:
                        out.put(item, timeout=0.5)
                        break
                    except queue.Full:
                        continue
            out.put(None)
        except BaseException as exc:  # handed to the consumer, raised there
            out.put(exc)

    thread = threading.Thread(target=produce, name="sscard-demo-generate", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def load_people(app: App, refs: CityRefs, people: int, seed: int, *, chunk_size: int = 5000,
                on_chunk: Callable[[int], None] | None = None) -> dict:
    """Generate and insert `people` cardholders in chunks; returns counts and the sample cardholders."""
    now = app.clock.now()
    gen = PeopleGenerator(seed, now, refs, app)
    tables = (Person.__table__, Card.__table__, BankAccount.__table__)
    with app.db.engine.connect() as conn:
        gen.next_person, gen.next_card, gen.next_account = (_max_id(conn, t) + 1 for t in tables)
    postgres = app.db.dialect == "postgresql"
    persons_t, cards_t, accounts_t = (BulkTable(t, app.db.dialect) for t in tables)

    def prepare(chunk: Chunk) -> None:
        persons_t.prepare(chunk.persons)
        cards_t.prepare(chunk.cards)
        cards_t.prepare(chunk.replacements)
        accounts_t.prepare(chunk.accounts)

    totals = {"persons": 0, "cards": 0, "bank_accounts": 0, "chunks": 0}
    for chunk in _generated(gen, people, chunk_size, prepare):
        first, last = chunk.persons[0]["id"], chunk.persons[-1]["id"]
        index = totals["chunks"] + 1

        def work(session, chunk=chunk, first=first, last=last, index=index):
            conn = session.connection()
            persons_t.insert(conn, chunk.persons)
            cards_t.insert(conn, chunk.cards)
            cards_t.insert(conn, chunk.replacements)  # after the cards they replace (foreign key)
            accounts_t.insert(conn, chunk.accounts)
            # One summary audit record for the whole chunk instead of one per person (bulk load).
            conn.execute(insert(AuditRecord.__table__), [_audit_row(
                now, "person", f"{first}-{last}", seed=seed, chunk=index, persons=len(chunk.persons),
                cards=len(chunk.cards) + len(chunk.replacements), bank_accounts=len(chunk.accounts))])
            if postgres:  # ids were given explicitly: move the sequences past them
                for table in tables:
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "  # noqa: S608
                                      f"(SELECT max(id) FROM {table.name}))"))

        app.db.run(work)  # a retry repeats only the inserts: the chunk was generated before
        totals["persons"] += len(chunk.persons)
        totals["cards"] += len(chunk.cards) + len(chunk.replacements)
        totals["bank_accounts"] += len(chunk.accounts)
        totals["chunks"] += 1
        if on_chunk:
            on_chunk(len(chunk.persons))

    def count_batches(session):
        for batch_id in set(refs.batches.values()):
            session.execute(update(ProductionBatch).where(ProductionBatch.id == batch_id).values(
                card_count=select(func.count()).where(Card.batch_id == batch_id).scalar_subquery()))

    app.db.run(count_batches)
    order = list(SAMPLE_LABELS)
    samples = [gen.samples[k] for k in order if k in gen.samples]
    return {"totals": totals, "samples": samples}


def refresh_samples(app: App, samples: list[dict]) -> list[dict]:
    """The sample cardholders' states as they are now (an area's populate may have moved them on)."""
    out = []
    with app.db.session() as s:
        for sample in samples:
            row = s.execute(select(Card.ss_status, BankAccount.status, BankAccount.pin_digest)
                            .join(BankAccount, BankAccount.card_id == Card.id)
                            .where(Card.card_number == sample["card_number"])).one()
            pin = demo_pin(sample["citizen_id"])
            known = app.secrets.pin_matches(row.pin_digest, BANK_PIN_PURPOSE, sample["pan"], pin)
            out.append(sample | {"ss_status": str(row.ss_status), "bank_status": str(row.status),
                                 "bank_pin": pin if known else None})
    return out


def state_counts(app: App) -> dict:
    """How many cards are in each SS state and accounts in each bank state (what the mix came out as)."""
    with app.db.session() as s:
        ss = dict(s.execute(select(Card.ss_status, func.count()).group_by(Card.ss_status)).all())
        bank = dict(s.execute(select(BankAccount.status, func.count()).group_by(BankAccount.status)).all())
        persons = s.scalar(select(func.count()).select_from(Person))
    return {"persons": persons, "ss_status": dict(sorted(ss.items())), "bank_status": dict(sorted(bank.items()))}

