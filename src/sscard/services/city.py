"""Setting up a city: banks, their outlets, service centers and terminals (an operator's work)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..core.errors import SscardError
from ..core.identifiers import ascii_digits
from ..core.roles import Role
from ..models.foundation import Bank, Outlet, ServiceCenter, Terminal
from . import lookup
from .access import Scope
from .operation import Op, operation
from .staff import TERMINAL_KINDS


def _unique(op: Op, model: type[Bank | Outlet | ServiceCenter | Terminal], code: str, what: tuple[str, str]) -> None:
    if op.session.scalar(select(model.id).where(model.code == code)) is not None:
        raise SscardError("already_exists", what=what)


@operation("city.add_bank", roles={Role.OPERATOR}, scope=Scope.CITY)
def add_bank(op: Op, code: str, name: str, bin: str, hotline: str, name_en: str = "") -> dict[str, Any]:
    if len(bin) != 6 or not ascii_digits(bin):
        raise SscardError("invalid_pan", reason=("BIN应为6位数字", "a BIN is 6 digits"))
    _unique(op, Bank, code, ("银行", "Bank"))
    bank = Bank(code=code, name=name, name_en=name_en, bin=bin, hotline=hotline)
    op.session.add(bank)
    op.session.flush()
    op.audit("bank", code, after="added")
    return {"id": bank.id, "code": code}


@operation("city.add_outlet", roles={Role.OPERATOR}, scope=Scope.CITY)
def add_outlet(op: Op, bank_code: str, code: str, name: str, address: str = "", name_en: str = "") -> dict[str, Any]:
    bank = lookup.bank_by_code(op.session, bank_code)
    _unique(op, Outlet, code, ("网点", "Outlet"))
    outlet = Outlet(bank_id=bank.id, code=code, name=name, name_en=name_en, address=address)
    op.session.add(outlet)
    op.session.flush()
    op.audit("outlet", code, after="added")
    return {"id": outlet.id, "code": code}


@operation("city.add_center", roles={Role.OPERATOR}, scope=Scope.CITY)
def add_center(op: Op, code: str, name: str, area_code: str, address: str = "", instant_issue: bool = False,
               name_en: str = "") -> dict[str, Any]:
    _unique(op, ServiceCenter, code, ("服务网点", "Service center"))
    center = ServiceCenter(code=code, name=name, name_en=name_en, area_code=area_code, address=address,
                           instant_issue=instant_issue)
    op.session.add(center)
    op.session.flush()
    op.audit("center", code, after="added")
    return {"id": center.id, "code": code}


@operation("city.add_terminal", roles={Role.OPERATOR}, scope=Scope.CITY)
def add_terminal(op: Op, code: str, kind: str, name: str, bank_code: str | None = None,
                 outlet_code: str | None = None, center_code: str | None = None, merchant_name: str = "") -> dict[str, Any]:
    if kind not in TERMINAL_KINDS:
        raise SscardError("invalid_request")
    _unique(op, Terminal, code, ("终端", "Terminal"))
    terminal = Terminal(code=code, kind=kind, name=name, merchant_name=merchant_name)
    if bank_code:
        terminal.bank_id = lookup.bank_by_code(op.session, bank_code).id
    if outlet_code:
        outlet = lookup.outlet_by_code(op.session, outlet_code)
        terminal.outlet_id, terminal.bank_id = outlet.id, outlet.bank_id
    if center_code:
        terminal.center_id = lookup.center_by_code(op.session, center_code).id
    op.session.add(terminal)
    op.session.flush()
    op.audit("terminal", code, after="added", kind=kind)
    return {"id": terminal.id, "code": code}
