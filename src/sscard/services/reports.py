"""The service-center supervisor's day report: operations per clerk, fees collected, cards in
production and awaiting collection. A Shanghai calendar day; CSV for export."""

from __future__ import annotations

import io
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select

from ..core import spreadsheet
from ..core.clock import SHANGHAI
from ..core.errors import About, SscardError
from ..core.identifiers import ascii_digits
from ..core.money import fen_to_yuan
from ..core.reversal import REPLACEMENTS
from ..core.roles import Role
from ..core.states import SsStatus
from ..i18n import label
from ..models.counter import FeeReceipt, ReplacementApplication, Reversal
from ..models.foundation import AuditRecord, Card, ServiceCenter, StaffUser
from . import access, lookup
from .access import Scope
from .operation import Op, query


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=SHANGHAI)
    return start, start + timedelta(days=1)


@query("reports.center_day", roles={Role.CENTER_SUPERVISOR, Role.OPERATOR}, scope=Scope.CENTER)
def center_day(op: Op, day: date | str | None = None, center_code: str | None = None) -> dict[str, Any]:
    if isinstance(day, str):
        try:
            day = date.fromisoformat(day)
        except ValueError:
            raise SscardError("invalid_request") from None
    day = day or op.app.clock.today()
    if center_code:
        center = lookup.center_by_code(op.session, center_code)
    elif op.actor.center_id is not None:
        own = op.session.get(ServiceCenter, op.actor.center_id)
        assert own is not None  # a clerk's center_id comes from staff_users.center_id, a foreign key
        center = own
    else:
        raise SscardError("invalid_request")
    access.require_center(op.actor, center.id, about=About("center", center.code, None))
    start, end = day_bounds(day)
    rows = op.session.execute(
        select(AuditRecord.actor_id, AuditRecord.operation, AuditRecord.result, func.count())
        .where(AuditRecord.place == center.code, AuditRecord.actor_kind == "staff",
               AuditRecord.at >= start, AuditRecord.at < end,
               AuditRecord.result != "viewed")  # the day's business and refusals, not its looks (session 22)
        .group_by(AuditRecord.actor_id, AuditRecord.operation, AuditRecord.result)
    ).all()
    names: dict[str, tuple[str, str]] = {}

    def named(staff_id: str) -> tuple[str, str]:
        """A staff id's username and display name (the id itself for one no longer known), looked up once."""
        if staff_id not in names:
            user = op.session.get(StaffUser, int(staff_id)) if ascii_digits(str(staff_id)) else None
            names[staff_id] = (user.username, user.display_name) if user else (staff_id, staff_id)
        return names[staff_id]

    per_clerk: dict[str, dict[str, Any]] = {}
    for actor_id, operation, result, count in rows:
        username, name = named(actor_id)
        clerk = per_clerk.setdefault(actor_id, {"staff_id": actor_id, "username": username, "name": name,
                                                "operations": {}, "total": 0, "refused": 0})
        if result == "ok":
            clerk["operations"][operation] = clerk["operations"].get(operation, 0) + count
            clerk["total"] += count
        else:
            clerk["refused"] += count
    fees = op.session.execute(
        select(FeeReceipt.method, func.count(), func.coalesce(func.sum(FeeReceipt.amount_fen), 0),
               func.coalesce(func.sum(FeeReceipt.due_fen), 0))
        .where(FeeReceipt.center_id == center.id, FeeReceipt.paid_at >= start, FeeReceipt.paid_at < end)
        .group_by(FeeReceipt.method)
    ).all()
    by_method = {m: {"count": n, "amount_fen": int(a), "due_fen": int(d)} for m, n, a, d in fees}
    # fees refunded today by a supervisor's reversal of their replacement (R6.15): the drawer paid them back
    refunded = op.session.execute(
        select(FeeReceipt.method, func.count(), func.coalesce(func.sum(FeeReceipt.amount_fen), 0))
        .select_from(Reversal)
        .join(AuditRecord, AuditRecord.id == Reversal.audit_record_id)
        .join(Card, Card.card_number == AuditRecord.object_id)
        .join(ReplacementApplication, ReplacementApplication.new_card_id == Card.id)
        .join(FeeReceipt, FeeReceipt.application_id == ReplacementApplication.id)
        .where(Reversal.center_id == center.id, Reversal.reversed_at >= start, Reversal.reversed_at < end,
               Reversal.operation.in_(sorted(REPLACEMENTS)), FeeReceipt.method.in_(("cash", "card")))
        .group_by(FeeReceipt.method)
    ).all()
    refunds = {m: {"count": n, "amount_fen": int(a)} for m, n, a in refunded}
    collected_fen = sum(v["amount_fen"] for v in by_method.values())
    refunded_fen = sum(v["amount_fen"] for v in refunds.values())
    in_production = op.session.scalar(select(func.count()).select_from(Card).where(
        Card.apply_center_id == center.id, Card.ss_status == SsStatus.IN_PRODUCTION)) or 0
    applied = op.session.scalar(select(func.count()).select_from(Card).where(
        Card.apply_center_id == center.id, Card.ss_status == SsStatus.APPLIED)) or 0
    awaiting = op.session.scalar(select(func.count()).select_from(Card).where(
        Card.ready_center_id == center.id, Card.ss_status == SsStatus.READY)) or 0
    reversed_rows = op.session.execute(
        select(Reversal.reversed_at, Reversal.operation, Reversal.reversed_by, Reversal.reason, AuditRecord.actor_id)
        .join(AuditRecord, AuditRecord.id == Reversal.audit_record_id)
        .where(Reversal.center_id == center.id, Reversal.reversed_at >= start, Reversal.reversed_at < end)
        .order_by(Reversal.id)).all()
    return {
        "day": day,
        "center": {"code": center.code, "name": center.name},
        "clerks": sorted(per_clerk.values(), key=lambda c: c["username"]),
        # a supervisor's reversals of the day's clerks' actions (services.reversal), with their reasons
        "reversals": [{"at": at, "operation": operation, "clerk": named(clerk_id)[0], "supervisor": named(sup)[0],
                       "reason": reason} for at, operation, sup, reason, clerk_id in reversed_rows],
        "fees": {
            "by_method": by_method,
            "collected_fen": collected_fen,
            "waived_fen": by_method.get("waived", {}).get("due_fen", 0),
            "receipts": sum(v["count"] for v in by_method.values()),
            "refunds": sum(v["count"] for v in refunds.values()),
            "refunded_fen": refunded_fen,
            "refunded_by_method": refunds,
            "net_fen": collected_fen - refunded_fen,
        },
        "cards": {"applied": applied, "in_production": in_production, "awaiting_collection": awaiting},
    }


CSV_HEADERS = {
    "zh": ["类别", "工作人员", "业务", "笔数", "金额（元）", "代码"],
    "en": ["section", "staff", "item", "count", "amount (yuan)", "code"],
}
CSV_SECTIONS = {
    "zh": {"ops": "业务量", "refused": "被拒绝", "fee": "工本费", "cards": "卡片", "total": "合计", "reversed": "主管撤销",
           "refunded": "撤销退还", "net": "净收"},
    "en": {"ops": "operations", "refused": "refused", "fee": "fees", "cards": "cards", "total": "total",
           "reversed": "reversed by a supervisor", "refunded": "refunded (reversed)", "net": "net"},
}


def to_csv(report: dict[str, Any], lang: str = "zh") -> str:
    """One table: operations per clerk, refusals, fees by method, cards in production / awaiting; each item in
    the page's words (as the HTML report names it) and, in its own column, its code for a spreadsheet's
    formulas."""
    lang = "en" if lang.startswith("en") else "zh"
    sec = CSV_SECTIONS[lang]
    out = io.StringIO()
    w = spreadsheet.Writer(out)
    w.writerow(CSV_HEADERS[lang])
    for clerk in report["clerks"]:
        who = f"{clerk['username']} ({clerk['name']})"
        for operation, count in sorted(clerk["operations"].items()):
            w.writerow([sec["ops"], who, label("operation_staff", operation, lang), count, "", operation])
        w.writerow([sec["ops"], who, sec["total"], clerk["total"], "", ""])
        if clerk["refused"]:
            w.writerow([sec["refused"], who, "", clerk["refused"], "", ""])
    for method, v in sorted(report["fees"]["by_method"].items()):
        w.writerow([sec["fee"], "", label("fee_method", method, lang), v["count"], fen_to_yuan(v["amount_fen"]), method])
    w.writerow([sec["fee"], "", sec["total"], report["fees"]["receipts"], fen_to_yuan(report["fees"]["collected_fen"]), ""])
    if report["fees"].get("refunds"):
        w.writerow([sec["fee"], "", sec["refunded"], report["fees"]["refunds"],
                    fen_to_yuan(-report["fees"]["refunded_fen"]), "refunded"])
        w.writerow([sec["fee"], "", sec["net"], "", fen_to_yuan(report["fees"]["net_fen"]), "net"])
    for key, count in report["cards"].items():
        w.writerow([sec["cards"], "", label("report_cards", key, lang), count, "", key])
    for r in report.get("reversals", ()):
        item = f"{label('operation_staff', r['operation'], lang)}: {r['reason']} ({r['supervisor']})"
        w.writerow([sec["reversed"], r["clerk"], item, 1, "", r["operation"]])
    return out.getvalue()
