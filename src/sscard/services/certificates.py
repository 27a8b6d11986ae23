"""The proof of insurance (参保证明, issue 17): issued by the cardholder on the portal, checked by anyone.

A cardholder asks for a period; the certificate freezes what the records show for it (months with a
contribution per insurance kind, per year, and the employers) with the issue time, and gets a
verification code (core/certificates.py) printed on the PDF. A third party (an employer, a landlord) types
the code on the public page and sees the essentials as a stranger should: the name and ID masked, the
period, kinds and months, the issue date, and that it is genuine. The code is kept only as a keyed
digest (a stolen table does not give working codes) and its last 4 characters (to name it).

Issuing writes the certificate row and one audit record; each successful check writes one too (the
cardholder's "who looked at my data" page lists it). Wrong codes are counted per client address and
refused over the login policy's limits, before any look-up (services/throttle.LoginThrottle, a namespace
of its own so checking certificates never spends the client's login budget).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from ..core import certificates as codes
from ..core.clock import shanghai_day
from ..core.errors import SscardError, register_messages
from ..core.identifiers import mask_citizen_id, mask_name
from ..core.roles import Actor, Channel, Role
from ..models.insurance import Certificate, Contribution, Employer
from . import lookup
from .access import Scope
from .app import App
from .insurance import INSURANCE_TYPES, check_month
from .operation import Op, operation, query
from .throttle import LoginThrottle

register_messages({
    "certificate_not_found": (
        404,
        "没有找到这个验证码对应的参保证明。请核对验证码（共17位，不区分大小写）；如仍找不到，此证明可能不是本系统开具的。",
        "No proof of insurance has this verification code. Check the code (17 characters, any case); if it is "
        "still not found, the certificate was not issued by this system.",
    ),
    "certificate_period": (
        422,
        "证明期间无效：起止月份须在{first}至{last}之间，且起始月份不晚于截止月份",
        "Invalid period: both months must be between {first} and {last}, the first not after the last",
    ),
})

PURPOSE = "insurance_certificate"
VERIFY_GATEWAY = Actor(kind="system", id="certificate_verify", role=Role.SYSTEM, name="certificate check",
                       channel=Channel.PORTAL)


def _digest(op: Op, code: str) -> str:
    return op.secrets.pin_digest(PURPOSE, "v1", code)


def _summary(rows: Sequence[Any], first: str, last: str) -> dict[str, Any]:
    """Months per kind in the period, months per kind per year, and the employers with their months."""
    in_period = [(c, e) for c, e in rows if first <= c.month <= last]
    by_kind = {t: sorted({c.month for c, _e in in_period if c.insurance_type == t}) for t in INSURANCE_TYPES}
    years = sorted({int(c.month[:4]) for c, _e in in_period})
    per_year = [{"year": y, "months": {t: len([m for m in by_kind[t] if m.startswith(f"{y}-")])
                                       for t in INSURANCE_TYPES}} for y in years]
    employers: dict[str, dict[str, Any]] = {}
    for c, e in in_period:
        found = employers.setdefault(e.code, {"name": e.name, "months": set()})
        found["months"].add(c.month)
    return {
        "months": {t: len(ms) for t, ms in by_kind.items()},
        "kinds": [t for t in INSURANCE_TYPES if by_kind[t]],
        "per_year": per_year,
        "employers": [{"name": v["name"], "from": min(v["months"]), "to": max(v["months"]),
                       "months": len(v["months"])} for v in sorted(employers.values(), key=lambda v: min(v["months"]))],
    }


@operation("certificates.issue", roles={Role.CARDHOLDER}, scope=Scope.OWN, keyed=False)
def issue_certificate(op: Op, period_from: str | None = None, period_to: str | None = None) -> dict[str, Any]:
    """The signed-in cardholder's own certificate for a period of months (default: the whole record).

    Answers the code in clear this once (for the PDF); only its digest and last 4 characters are kept.
    Unkeyed on purpose: a replayed answer would be the code kept in clear in the idempotency table."""
    assert op.actor.person_id is not None  # a cardholder actor always carries its person id
    person = lookup.person_by_id(op.session, op.actor.person_id, op.actor)
    rows = op.session.execute(
        select(Contribution, Employer).join(Employer, Employer.id == Contribution.employer_id)
        .where(Contribution.person_id == person.id)
    ).all()
    if not rows:
        raise SscardError("not_found", what=("缴费记录", "Contribution records"))
    first_on_record = min(c.month for c, _e in rows)
    last_on_record = max(c.month for c, _e in rows)
    first = check_month(period_from) if period_from else first_on_record
    last = check_month(period_to) if period_to else last_on_record
    if not (first_on_record <= first <= last <= last_on_record):
        raise SscardError("certificate_period", first=first_on_record, last=last_on_record)
    code = codes.new_code()
    content = {
        "name": person.name,  # on the cardholder's own PDF (handed over by them); the public page masks it
        "name_masked": mask_name(person.name),
        "citizen_id_masked": mask_citizen_id(person.citizen_id),
        **_summary(rows, first, last),
    }
    row = Certificate(code_digest=_digest(op, code), code_tail=code[-4:], person_id=person.id, issued_at=op.now,
                      period_from=first, period_to=last, content=content)
    op.session.add(row)
    op.session.flush()
    op.audit("certificate", str(row.id), person_id=person.id, after="issued", period_from=first, period_to=last,
             code_tail=code[-4:])
    return {"id": row.id, "code": code, "code_grouped": codes.grouped(code), "issued_at": op.now,
            "issued_on": shanghai_day(op.now).isoformat(), "period_from": first, "period_to": last,
            "content": content}


@query("certificates.list", roles={Role.CARDHOLDER}, scope=Scope.OWN)
def my_certificates(op: Op) -> dict[str, Any]:
    """The certificates the signed-in cardholder has issued, newest first (never their codes)."""
    assert op.actor.person_id is not None  # a cardholder actor always carries its person id
    person = lookup.person_by_id(op.session, op.actor.person_id, op.actor)
    found = op.session.scalars(select(Certificate).where(Certificate.person_id == person.id)
                               .order_by(Certificate.id.desc()).limit(50)).all()
    return {"certificates": [{"id": c.id, "issued_at": c.issued_at, "period_from": c.period_from,
                              "period_to": c.period_to, "code_tail": c.code_tail} for c in found]}


@operation("certificates.verify", roles={Role.SYSTEM}, scope=Scope.CITY, keyed=False)
def verify_certificate(op: Op, code: str) -> dict[str, Any]:
    """What a third party may see of a genuine certificate; `certificate_not_found` for anything else
    (mistyped, forged, or a code never issued: one answer, so it tells nothing more)."""
    normal = codes.normalize(code)
    row = None
    if normal is not None:
        row = op.session.scalar(select(Certificate).where(Certificate.code_digest == _digest(op, normal)))
    if row is None:
        raise SscardError("certificate_not_found")
    content = row.content
    op.audit("certificate", str(row.id), person_id=row.person_id, after="verified")
    return {
        "genuine": True,
        "name": content["name_masked"],
        "citizen_id": content["citizen_id_masked"],
        "period_from": row.period_from,
        "period_to": row.period_to,
        "kinds": content["kinds"],
        "months": content["months"],
        "issued_at": row.issued_at,
        "code_tail": row.code_tail,
    }


def certificate_throttle(app: App) -> LoginThrottle:
    """Wrong codes per client address, in the login policy's windows (a namespace of its own)."""
    found = app.extras.get("certificate_throttle")
    if found is None:
        policy = app.policy.login
        found = LoginThrottle(app.settings.rate_limit_storage, policy.client_failures_per_minute,
                              policy.client_failures_per_hour, key=app.settings.secret_key,
                              namespace="sscard-certificate")
        app.extras["certificate_throttle"] = found
    return found


def check_code(app: App, client: str, code: str) -> dict[str, Any]:
    """The public page's check: refused unchecked (too_many_attempts) while the client is over its limit,
    a wrong code counted against it."""
    throttle = certificate_throttle(app)
    wait = throttle.retry_after(client)
    if wait:
        raise SscardError("too_many_attempts", seconds=wait)
    try:
        return verify_certificate(app, VERIFY_GATEWAY, code)
    except SscardError as err:
        if err.code == "certificate_not_found":
            throttle.failed(client, "certificate", code[:40])
        raise
