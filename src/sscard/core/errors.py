"""Named business errors, each with a machine-readable code and a message in Chinese and English.

Every refusal in sscard is one of these: channels turn them into HTTP 4xx, voice prompts or
console messages; none of them ever carries a password or PIN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# code -> (HTTP status, Chinese message, English message). Messages may use {named} params.
# Every message, page, PDF and spoken prompt is written in these; the first is the default.
LANGUAGES = ("zh", "en")

MESSAGES: dict[str, tuple[int, str, str]] = {
    # input and identifiers
    "invalid_request": (422, "请求格式不正确", "The request is malformed"),
    "method_not_allowed": (405, "此地址不接受该请求方法（见 Allow）", "This method is not allowed here (see Allow)"),
    "invalid_citizen_id": (422, "公民身份号码无效：{reason}", "Invalid citizen ID: {reason}"),
    "invalid_card_number": (422, "社会保障卡卡号无效：{reason}", "Invalid card number: {reason}"),
    "invalid_pan": (422, "银行卡号无效：{reason}", "Invalid bank card number: {reason}"),
    "invalid_ident_code": (422, "卡识别码无效：{reason}", "Invalid card identification code: {reason}"),
    "invalid_amount": (422, "金额无效", "Invalid amount"),
    "invalid_text": (422, "输入的文字含有不可见字符或文字方向控制符（常见于从别处复制粘贴的文字），请删除后重新输入",
                     "The text contains invisible or text-direction control characters (often pasted from "
                     "elsewhere): delete them and type it again"),
    "token_owner": (422, "请指定一个用户或一个终端（二者选一）", "Name one user or one terminal (one of the two)"),
    "pan_repeated": (422, "同一银行卡号在文件中出现不止一行", "The same PAN is on more than one line of the file"),
    "invalid_policy": (422, "政策设置无效：{setting}：{reason}", "Invalid policy setting {setting}: {reason}"),
    # who may do what
    "unauthenticated": (401, "请先登录或提供有效凭证", "Authentication required"),
    "forbidden": (403, "无权办理此业务", "You are not allowed to do this"),
    "wrong_terminal_kind": (403, "此终端不能办理该业务", "This terminal cannot do this operation"),
    "wrong_bank": (
        403,
        "此卡不属于本行，请到卡面所示银行的网点办理",
        "This card belongs to another bank: it can only be handled at an outlet of the bank on the card",
    ),
    "wrong_center": (403, "此业务不属于本服务网点", "This belongs to another service center"),
    "last_operator": (409, "这是最后一个启用的系统管理员账号，不能停用：请先添加或启用另一个系统管理员账号",
                      "This is the last enabled operator account and cannot be disabled: add or enable another "
                      "operator account first"),
    "staff_self": (403, "不能对自己的账号办理此业务，请由主管或系统管理员办理",
                   "You cannot do this to your own account: your supervisor or the operator can"),
    "attorney_not_valid": (
        403,
        "授权委托书无效、已过期或不包含此业务{covers}",
        "The power of attorney is not valid, has expired or does not cover this operation{covers}",
    ),
    "identity_mismatch": (403, "所出示的身份证件与持卡人不符", "The ID presented does not match the cardholder"),
    # lookups
    "not_found": (404, "未找到{what}", "{what} not found"),
    "person_not_found": (404, "未找到该参保人员", "Person not found"),
    "card_not_found": (404, "未找到该社会保障卡", "Card not found"),
    "account_not_found": (404, "未找到该账户", "Account not found"),
    "already_exists": (409, "{what}已存在", "{what} already exists"),
    # state machines
    "illegal_transition": (
        409,
        "当前状态（{state}）不能办理此业务（{event}）",
        "This cannot be done in the current state ({state}): {event}",
    ),
    "card_not_usable": (409, "此卡当前不可使用（{state}）", "This card cannot be used now ({state})"),
    "card_lost": (409, "此卡已挂失", "This card has been reported lost"),
    "card_cancelled": (409, "此卡已注销", "This card has been cancelled"),
    "card_expired": (
        409,
        "此卡已过有效期（{expiry}），不能在自助设备和POS机上支出；请持身份证到社保卡服务网点办理换卡（到期换卡），"
        "账户资金可在开户银行柜台支取",
        "This card expired on {expiry}: it takes no debit at an ATM or POS. Renew it at a social security card "
        "service center with your ID (reason: expiring); the account's money can be withdrawn at a counter of "
        "the card's bank",
    ),
    "card_sealed": (
        409,
        "此卡逾期未领取，已封存：请持身份证件到服务网点办理解封后领取",
        "This card was not collected in time and is sealed: it must be unsealed at a window, with ID",
    ),
    "replacement_exists": (
        409,
        "已申请补换卡，不能解除挂失",
        "A replacement has been applied for: the loss can no longer be cancelled",
    ),
    "card_pending": (409, "该人员已有在办的社会保障卡", "This person already has a card being produced or issued"),
    # passwords
    "wrong_password": (401, "密码错误{tries}", "Wrong password{tries}"),
    "password_locked": (423, "密码已锁定{until}", "The password is locked{until}"),
    "weak_password": (422, "密码过于简单：{reason}", "The password is too weak: {reason}"),
    "password_mismatch": (422, "两次输入的新密码不一致", "The two new passwords differ"),
    "password_change_required": (
        403,
        "初始密码须先修改后才能使用",
        "The initial password must be changed before use",
    ),
    "pin_identification_required": (
        403,
        "凭预留手机号码验证身份只能挂失和查询，解除挂失须凭银行卡密码验证身份，或持身份证到开户银行网点办理",
        "Identified by the registered mobile number, you may report the loss and hear the status only: cancelling "
        "a loss needs the card PIN as identification, or a visit to an outlet of the card's bank with your ID",
    ),
    # idempotency
    "idempotency_key_reused": (
        422,
        "此幂等键已用于另一不同请求",
        "This idempotency key was already used for a different request",
    ),
    "idempotency_key_required": (400, "缺少幂等键（Idempotency-Key）", "An Idempotency-Key header is required"),
    # the bank counter's desk (web.bank_console): a confirm step is for the card it names
    "desk_customer_changed": (
        409,
        "柜台的当前客户已在其他窗口变更或结束办理：此确认针对尾号{last4}的卡，未办理任何业务。请重新查询客户后再办理。",
        "The customer at the desk was changed or the visit ended in another window: this confirmation was for the "
        "card ending {last4}, and nothing was done. Look the customer up again first.",
    ),
    "not_reversible": (409, "此业务不能撤销：{why}", "This action cannot be reversed: {why}"),
    "reason_required": (422, "主管授权须填写原因", "A supervisor's override needs a reason"),
    "desk_customer_unnamed": (
        409,
        "此表单没有注明是为哪位客户打开的（页面可能已过期），未办理任何业务。请重新查询客户后再办理。",
        "This form does not say which customer it was shown for (the page may be out of date): nothing was done. "
        "Look the customer up again first.",
    ),
    "confirmation_already_used": (
        409,
        "此确认已经提交过，业务已按当时确认的内容办理（见下方最近交易）；修改后的内容没有办理。如需再办一笔，请重新开始。",
        "This confirmation was already submitted and done as confirmed then (see the recent transactions below); "
        "the change was not done. To make another one, start again.",
    ),
    # money (used by the ledger)
    "insufficient_funds": (409, "余额不足", "Insufficient funds"),
    "account_lost": (409, "账户已挂失，不能支出", "The account is reported lost: debits are refused"),
    "account_frozen": (409, "账户已冻结，不能支出", "The account is frozen: debits are refused"),
    "account_lost_pin_change": (
        409,
        "账户已挂失，不能修改密码。请先解除挂失，或持身份证到开户银行网点重置密码",
        "The account is reported lost: its PIN cannot be changed. Cancel the loss first, or have the PIN reset "
        "at an outlet of the card's bank with your ID",
    ),
    "close_replacement_not_activated": (
        409,
        "这是补换卡的新账户，尚未启用，原卡账户（{old_pan}）仍在使用：启用新卡时原卡余额转入新账户。请先启用新卡，或先为原卡账户销户",
        "This is a replacement card's account, not activated yet, and the old card's account ({old_pan}) is still "
        "open: activating the new card moves its balance over. Activate the new card first, or close the old "
        "account first",
    ),
    "close_account_moving_to_new_card": (
        409,
        "该账户将随正在办理的补换卡（保留原卡号）转至新卡，新卡领取前不能销户",
        "This account moves to the replacement card on its way (it keeps the card number): it cannot be closed "
        "before the new card is collected",
    ),
    "account_frozen_pin_change": (
        409,
        "账户已冻结，不能修改密码",
        "The account is frozen: its PIN cannot be changed",
    ),
    "account_closed": (409, "账户已销户", "The account is closed"),
    "not_activated": (409, "金融功能尚未启用", "The financial function is not activated"),
    "activation_window_expired": (
        409,
        "已超过金融功能启用期限，请联系银行主管办理延期",
        "The activation window has expired: a bank supervisor may extend it once",
    ),
    "limit_exceeded": (409, "超过限额：{limit}", "Limit exceeded: {limit}"),
    "pin_locked": (423, "银行密码已锁定{until}", "The bank PIN is locked{until}"),
    "wrong_pin": (401, "密码错误{tries}", "Wrong password{tries}"),
    "invalid_transfer_id": (422, "交易编号须为1至64位字母、数字、“-”或“_”", "A transfer id is 1 to 64 letters, digits, - or _"),
    "transfer_exists": (409, "交易编号已存在", "A transfer with this id already exists"),
    "pending_not_found": (404, "未找到该预授权", "Pending transfer not found"),
    "pending_expired": (409, "预授权已过期", "The pending transfer has expired"),
    "pending_already_resolved": (409, "预授权已完成或撤销", "The pending transfer was already posted or voided"),
    # a caller's token over the city's per-caller request limit (services.throttle.CallerRate): nothing was done
    "rate_limited": (429, "请求过于频繁，请{seconds}秒后再试",
                     "Too many requests from this caller: nothing was done, try again in {seconds} seconds"),
    # load: nothing was done; the same request (same Idempotency-Key) may be sent again after Retry-After
    "body_too_large": (413, "请求内容过大", "The request is too large"),
    "service_busy": (503, "系统繁忙，请稍后重试", "The service is busy: nothing was done, try again shortly"),
}


@dataclass(frozen=True, slots=True)
class About:
    """What a refused caller reached for, as audit records name it: the object (`object_type`, `object_id`:
    "card" and its card number, "bank_account" and its PAN, ...) and whose it is (`person_id`, None for
    nobody's: a center's report or production batch)."""

    object_type: str
    object_id: str
    person_id: int | None


class SscardError(Exception):
    """A refusal with a code. `commit=True` means: keep what was written (a failure counter, an
    audit record of the attempt) and still answer with this error."""

    about: About | None = None
    """What the refused caller reached for, and whose it was (services.access's require_bank and
    require_center set it, require_own through require_bank): the attempt's audit record names the object
    and the person, so the person's access log, the auditors and the object's bank (by `object_bank_id`)
    see it. Never part of the answer."""

    def __init__(self, code: str, *, commit: bool = False, status: int | None = None, **params: object):
        if code not in MESSAGES:
            raise KeyError(f"unknown error code {code!r}: add it to sscard.core.errors.MESSAGES")
        self.code = code
        self.params = params
        self.commit = commit
        self.status = status or MESSAGES[code][0]
        super().__init__(self.message("en"))

    def message(self, lang: str = "zh") -> str:
        _, zh, en = MESSAGES[self.code]
        template = en if lang.startswith("en") else zh
        try:  # a param the raiser did not give reads as nothing, never as "{name}"
            return template.format_map(_Blank({k: _localize(v, lang) for k, v in self.params.items()}))
        except (KeyError, IndexError, ValueError):
            return template

    def without_count(self) -> SscardError:
        """The same refusal without the tries left: an identification step (a login, a caller's ID
        check) must answer a known login exactly as an unknown one, or the count tells which exists."""
        params = {k: v for k, v in self.params.items() if k not in ("tries", "tries_left")}
        return SscardError(self.code, commit=self.commit, status=self.status, **params)

    def to_dict(self, lang: str = "zh") -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message(lang)}
        if isinstance(self.params.get("tries_left"), int):  # for a client to show, not to parse from text
            body["tries_left"] = self.params["tries_left"]
        if isinstance(self.params.get("locked_until"), str):  # a lock's end, for a program (ISO 8601, UTC)
            body["locked_until"] = self.params["locked_until"]
        if self.params.get("reset_required") is True:  # a lock only a reset in person ends
            body["reset_required"] = True
        return body


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def tries_left_text(n: int) -> tuple[str, str]:
    """The (zh, en) tail of a wrong-password message: how many tries remain before the lock."""
    return (f"，还可尝试{n}次", f", {n} {'try' if n == 1 else 'tries'} left")


def register_messages(extra: dict[str, tuple[int, str, str]]) -> None:
    """Areas (ledger, medical, hotline...) add their own codes here, once at import."""
    for code, value in extra.items():
        if code in MESSAGES and MESSAGES[code] != value:
            raise ValueError(f"error code {code!r} registered twice with different texts")
        MESSAGES[code] = value


def _localize(value: object, lang: str) -> object:
    if isinstance(value, tuple) and len(value) == 2:  # (zh, en) pair
        return value[1] if lang.startswith("en") else value[0]
    return value
