"""The fixed part of the demo city, set up through the services as an operator would (RULES §1).

Two banks with their own UnionPay BINs and hotlines, three outlets each, three service centers in
Beijing (one issuing cards on the spot), staff users of every role with a known demo password, and
terminals of every kind, each with an API token issued by `services.staff.issue_token` (random: only
its digest is kept, so a token is shown once, here).

Creation is idempotent by code: what already exists is left as it is (and said so), so a demo that
stopped half-way can be run again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ..core.roles import CLI_OPERATOR
from ..models.foundation import Bank, Outlet, ServiceCenter, StaffUser, Terminal
from ..services import city as city_svc
from ..services import staff
from ..services.app import App

# A demo password for every demo staff user: the demo's purpose is to let a tester log in.
DEMO_STAFF_PASSWORD = "sscard-demo-2026"


@dataclass(frozen=True)
class DemoBank:
    code: str
    name: str
    name_en: str
    bin: str
    hotline: str


@dataclass(frozen=True)
class DemoOutlet:
    bank: str
    code: str
    name: str
    address: str
    name_en: str = ""


@dataclass(frozen=True)
class DemoCenter:
    code: str
    name: str
    area_code: str
    address: str
    instant_issue: bool = False
    name_en: str = ""


@dataclass(frozen=True)
class DemoStaff:
    username: str
    role: str
    display_name: str
    center: str | None = None
    outlet: str | None = None


@dataclass(frozen=True)
class DemoTerminal:
    code: str
    kind: str
    name: str
    bank: str | None = None
    outlet: str | None = None
    center: str | None = None
    merchant: str = ""


BANKS = (
    DemoBank("GSB", "工商银行", "ICBC", "622202", "95588"),
    DemoBank("JSB", "建设银行", "CCB", "621700", "95533"),
)

OUTLETS = (
    DemoOutlet("GSB", "GSB-001", "工商银行东城支行", "北京市东城区东长安街1号", "ICBC Dongcheng Branch"),
    DemoOutlet("GSB", "GSB-002", "工商银行海淀支行", "北京市海淀区中关村大街27号", "ICBC Haidian Branch"),
    DemoOutlet("GSB", "GSB-003", "工商银行朝阳支行", "北京市朝阳区建国路88号", "ICBC Chaoyang Branch"),
    DemoOutlet("JSB", "JSB-001", "建设银行西城支行", "北京市西城区金融大街25号", "CCB Xicheng Branch"),
    DemoOutlet("JSB", "JSB-002", "建设银行丰台支行", "北京市丰台区丰台北路18号", "CCB Fengtai Branch"),
    DemoOutlet("JSB", "JSB-003", "建设银行朝阳支行", "北京市朝阳区朝阳门外大街6号", "CCB Chaoyang Branch"),
)

CENTERS = (
    DemoCenter("C01", "东城区社会保障卡服务中心", "110101", "北京市东城区东四十条甲22号",
               name_en="Dongcheng District Social Security Card Service Center"),
    DemoCenter("C02", "海淀区社会保障卡服务中心", "110108", "北京市海淀区北四环西路58号",
               name_en="Haidian District Social Security Card Service Center"),
    DemoCenter("C03", "朝阳区社会保障卡即时制卡中心", "110105", "北京市朝阳区工体北路11号", instant_issue=True,
               name_en="Chaoyang District Instant Card Issuing Center"),
)

STAFF = (
    DemoStaff("admin", "operator", "系统管理员"),
    DemoStaff("clerk01", "clerk", "王芳", center="C01"),
    DemoStaff("clerk02", "clerk", "李娜", center="C02"),
    DemoStaff("clerk03", "clerk", "张敏", center="C03"),
    DemoStaff("csup01", "center_supervisor", "刘洋", center="C01"),
    DemoStaff("csup02", "center_supervisor", "陈静", center="C02"),
    DemoStaff("teller_gsb1", "teller", "杨磊", outlet="GSB-001"),
    DemoStaff("teller_gsb2", "teller", "赵丽", outlet="GSB-002"),
    DemoStaff("teller_jsb1", "teller", "黄强", outlet="JSB-001"),
    DemoStaff("bsup_gsb", "bank_supervisor", "周军", outlet="GSB-001"),
    DemoStaff("bsup_jsb", "bank_supervisor", "吴霞", outlet="JSB-001"),
)

TERMINALS = (
    DemoTerminal("ATM-GSB-001", "atm", "工商银行东城支行ATM", outlet="GSB-001"),
    DemoTerminal("ATM-JSB-001", "atm", "建设银行西城支行ATM", outlet="JSB-001"),
    DemoTerminal("POS-GSB-001", "pos", "物美超市收银台1", bank="GSB", merchant="物美超市（东城店）"),
    DemoTerminal("POS-JSB-001", "pos", "华联商厦收银台1", bank="JSB", merchant="华联商厦"),
    # ISO 8583 terminals (8-character terminal ids, field 41): `sscard iso8583 keys GSBATM01`
    DemoTerminal("GSBATM01", "atm", "工商银行东城支行ATM（ISO 8583）", outlet="GSB-001"),
    DemoTerminal("GSBPOS01", "pos", "物美超市收银台2（ISO 8583）", bank="GSB", merchant="物美超市（东城店）"),
    DemoTerminal("HOSP-001", "hospital", "北京协和医院收费窗口", merchant="北京协和医院"),
    DemoTerminal("HOSP-002", "hospital", "北京朝阳医院收费窗口", merchant="北京朝阳医院"),
    DemoTerminal("PHARM-001", "pharmacy", "同仁堂药店（王府井店）", merchant="同仁堂药店"),
    DemoTerminal("KIOSK-C01", "kiosk", "东城区服务中心自助机", center="C01"),
    DemoTerminal("KIOSK-C03", "kiosk", "朝阳区即时制卡中心自助机", center="C03"),
)


def _exists(app: App, model, column, value) -> bool:
    with app.db.session() as s:
        return s.scalar(select(model.id).where(column == value)) is not None


def create_city(app: App) -> dict:
    """Banks, outlets, centers, staff and terminals through the services; tokens for staff and terminals.

    Returns what a tester needs to log in (demo passwords and tokens included: this goes to the demo's
    own output, never to a log)."""
    op = CLI_OPERATOR
    created: dict[str, int] = {"banks": 0, "outlets": 0, "centers": 0, "staff": 0, "terminals": 0}
    for b in BANKS:
        if not _exists(app, Bank, Bank.code, b.code):
            city_svc.add_bank(app, op, b.code, b.name, b.bin, b.hotline, name_en=b.name_en)
            created["banks"] += 1
    for o in OUTLETS:
        if not _exists(app, Outlet, Outlet.code, o.code):
            city_svc.add_outlet(app, op, o.bank, o.code, o.name, o.address, name_en=o.name_en)
            created["outlets"] += 1
    for c in CENTERS:
        if not _exists(app, ServiceCenter, ServiceCenter.code, c.code):
            city_svc.add_center(app, op, c.code, c.name, c.area_code, c.address, instant_issue=c.instant_issue,
                                name_en=c.name_en)
            created["centers"] += 1
    staff_out = []
    for u in STAFF:
        new = not _exists(app, StaffUser, StaffUser.username, u.username)
        if new:
            staff.add_user(app, op, u.username, DEMO_STAFF_PASSWORD, u.role, u.display_name,
                           center_code=u.center, outlet_code=u.outlet)
            created["staff"] += 1
        token = staff.issue_token(app, op, username=u.username, label="demo")["token"]
        staff_out.append({
            "username": u.username,
            "role": u.role,
            "name": u.display_name,
            "where": u.center or u.outlet or "",
            "password": DEMO_STAFF_PASSWORD if new else "(existing user: password unchanged)",
            "api_token": token,
        })
    terminals_out = []
    for t in TERMINALS:
        if not _exists(app, Terminal, Terminal.code, t.code):
            city_svc.add_terminal(app, op, t.code, t.kind, t.name, bank_code=t.bank, outlet_code=t.outlet,
                                  center_code=t.center, merchant_name=t.merchant)
            created["terminals"] += 1
        token = staff.issue_token(app, op, terminal_code=t.code, label="demo")["token"]
        terminals_out.append({
            "code": t.code,
            "kind": t.kind,
            "name": t.name,
            "where": t.outlet or t.bank or t.center or t.merchant,
            "token": token,
        })
    return {
        "created": created,
        "banks": [{"code": b.code, "name": b.name, "name_en": b.name_en, "bin": b.bin, "hotline": b.hotline}
                  for b in BANKS],
        "outlets": [{"code": o.code, "bank": o.bank, "name": o.name} for o in OUTLETS],
        "centers": [{"code": c.code, "name": c.name, "area_code": c.area_code, "instant_issue": c.instant_issue}
                    for c in CENTERS],
        "staff": staff_out,
        "terminals": terminals_out,
    }
