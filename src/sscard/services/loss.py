"""Loss reporting on both sides of the card (RULES §5), reported separately.

Social security side: temporary loss by 12333 or the portal (lapses after 7 days), formal loss at a
window with ID, cancel (temporary by phone/portal/window, formal at a window) unless a replacement
has been applied for. Bank side: oral loss by the bank's hotline (lapses after 5 days), written loss
at an outlet of the card's bank with ID, cancel. Every confirmation says the other side is separate
and how to report it. With policy loss.linked, a loss on one side records one on the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from sqlalchemy import select

from ..core.errors import About, SscardError
from ..core.identifiers import mask_card_number, mask_pan
from ..core.roles import BANK_STAFF, CENTER_STAFF, Channel, Role
from ..core.states import BankStatus, SsStatus
from ..models.foundation import Bank, BankAccount, Card
from . import access, lookup
from . import card_lifecycle as lifecycle
from .access import Scope
from .operation import Op, operation

if TYPE_CHECKING:
    from ..models.counter import PowerOfAttorney

HOTLINE_12333 = "12333"


class Reminder(TypedDict):
    """That the other side of the card is reported separately, and where, in both languages."""

    zh: str
    en: str


def remind_bank(bank: Bank, linked: str | None = None, oral_days: int = 0,
                status: BankStatus | str | None = None) -> Reminder:
    """After an SS loss: the bank side is separate. With loss.linked, when the loss also recorded the bank's
    (`linked`: its new state), say so, and that an oral loss lapses (session 22's rules probe: a linked loss
    told the cardholder the bank account was not reported when it was). `status`, the account's state in
    effect: only an active account is one to report (BANK_TRANSITIONS), so an account not activated yet,
    already lost, frozen or closed is told as it is, never as a loss to report that its bank would refuse
    (session 27's portal probe: 12333 sent the holder of a not-activated account to call the bank, whose
    line answered that no oral loss can be recorded)."""
    bank_en = bank.name_en or bank.name
    if linked is not None:
        return {
            "zh": f"银行账户已同时办理口头挂失，{oral_days}天后自动解除。请在此之前致电{bank.name}客服热线"
                  f"{bank.hotline}或到该行网点办理书面挂失。",
            "en": f"The bank account was reported lost orally too; an oral loss lapses after {oral_days} days. "
                  f"Before then, call {bank_en} on {bank.hotline} or visit one of its outlets to report it in writing.",
        }
    if status == BankStatus.NOT_ACTIVATED:
        return {
            "zh": f"银行账户尚未启用，不能支取，无需挂失；启用须本人持卡和身份证到{bank.name}网点办理。"
                  f"如有疑问请致电{bank.name}客服热线{bank.hotline}。",
            "en": f"The bank account is not activated yet: nothing can be taken from it, so it needs no loss report. "
                  f"Only you can activate it, with the card and your ID, at an outlet of {bank_en}. "
                  f"For questions, call {bank_en} on {bank.hotline}.",
        }
    if status == BankStatus.ORAL_LOSS:
        return {
            "zh": f"银行账户已口头挂失，口头挂失到期前请持身份证到{bank.name}网点办理书面挂失"
                  f"（{bank.name}客服热线{bank.hotline}）。",
            "en": f"The bank account is already reported lost orally: before that lapses, report it in writing at an "
                  f"outlet of {bank_en} with your ID ({bank_en} hotline: {bank.hotline}).",
        }
    if status == BankStatus.WRITTEN_LOSS:
        return {
            "zh": f"银行账户已书面挂失，无需另行挂失（{bank.name}客服热线{bank.hotline}）。",
            "en": f"The bank account is already reported lost in writing: it needs no other report ({bank_en} hotline: "
                  f"{bank.hotline}).",
        }
    if status == BankStatus.FROZEN:
        return {
            "zh": f"银行账户已冻结，不能支取，无需挂失；如有疑问请致电{bank.name}客服热线{bank.hotline}。",
            "en": f"The bank account is frozen: nothing can be taken from it, so it needs no loss report. "
                  f"For questions, call {bank_en} on {bank.hotline}.",
        }
    if status == BankStatus.CLOSED:
        return {
            "zh": "银行账户已销户，无需挂失。",
            "en": "The bank account is closed: it needs no loss report.",
        }
    return {
        "zh": f"社会保障卡挂失不包括银行账户。请另行致电{bank.name}客服热线{bank.hotline}或到该行网点办理银行账户挂失。",
        "en": f"This does not report the bank account lost. Call {bank_en} on {bank.hotline} "
        "or visit one of its outlets to report the bank side.",
    }


def remind_ss(linked: str | None = None, temporary_days: int = 0, status: SsStatus | str | None = None) -> Reminder:
    """After a bank loss: the SS side is separate; with loss.linked, what was recorded on it. `status`, the
    card's SS state in effect: a card already lost, or cancelled (the old card of a replacement, whose account
    keeps its state until the new one is activated), is told as it is, not as a loss still to report."""
    if linked is not None:
        return {
            "zh": f"社会保障卡的社保功能已同时临时挂失，{temporary_days}天后自动解除；如需正式挂失，请到社会保障卡服务网点办理。",
            "en": f"The card's social security functions were reported lost temporarily too; that lapses after "
                  f"{temporary_days} days. For a formal loss, visit a social security card service center.",
        }
    if status == SsStatus.TEMPORARY_LOSS:
        return {
            "zh": f"社会保障卡的社保功能已临时挂失，到期自动解除；如需补卡，请持身份证到社会保障卡服务网点办理正式挂失"
                  f"（咨询电话{HOTLINE_12333}）。",
            "en": "The card's social security functions are already reported lost temporarily, which lapses; for a "
                  "replacement, report the loss formally at a social security card service center with your ID "
                  f"(questions: {HOTLINE_12333}).",
        }
    if status == SsStatus.FORMAL_LOSS:
        return {
            "zh": "社会保障卡的社保功能已正式挂失，无需另行挂失。",
            "en": "The card's social security functions are already reported lost formally: they need no other report.",
        }
    if status == SsStatus.CANCELLED:
        return {
            "zh": "此卡的社保功能已注销，无需挂失。",
            "en": "The social security functions of this card are cancelled: they need no loss report.",
        }
    return {
        "zh": f"银行账户挂失不包括社会保障功能。请另行致电{HOTLINE_12333}或到社会保障卡服务网点办理社保挂失。",
        "en": f"This does not report the social security card lost. Call {HOTLINE_12333} or visit a social "
        "security card service center to report the social security side.",
    }


def _linked_bank_loss(op: Op, card: Card) -> str | None:
    """loss.linked: an SS loss also records an oral bank loss on an active account (no city offers this by
    default): it lapses after bank_loss.oral_days unless made written at an outlet, as the reminder says."""
    if not op.policy.loss.linked:
        return None
    account = lookup.account_for_card(op.session, card)
    if lifecycle.bank_status(op, account) == BankStatus.ACTIVE:
        lifecycle.bank_transition(op, account, "report_oral_loss")
        return account.status
    return None


def _linked_ss_loss(op: Op, account: BankAccount) -> str | None:
    if not op.policy.loss.linked:
        return None
    card = op.session.get(Card, account.card_id)
    assert card is not None  # bank_accounts.card_id is a NOT NULL foreign key
    if lifecycle.ss_status(op, card) == SsStatus.NORMAL:
        lifecycle.ss_transition(op, card, "report_temporary_loss")
        return card.ss_status
    return None


def bank_reminder(op: Op, card: Card, linked: str | None = None) -> Reminder:
    """What an SS loss's confirmation says about the card's bank account, from the account's state in effect."""
    status = linked or lifecycle.bank_status(op, lookup.account_for_card(op.session, card))
    return remind_bank(_bank_of(op, card.bank_id), linked, op.policy.bank_loss.oral_days, status)


def _ss_reminder(op: Op, account: BankAccount, linked: str | None = None) -> Reminder:
    """What a bank loss's confirmation says about the card's social security side, from its state in effect."""
    card = op.session.get(Card, account.card_id)
    status = lifecycle.ss_status(op, card) if card is not None and linked is None else None
    return remind_ss(linked, op.policy.ss_loss.temporary_days, status)


def _bank_of(op: Op, bank_id: int) -> Bank:
    bank = op.session.get(Bank, bank_id)
    assert bank is not None  # called with cards.bank_id, a NOT NULL foreign key
    return bank


# ---------------------------------------------------------------- social security side


@operation("ss_loss.report_temporary", roles={Role.CARDHOLDER} | CENTER_STAFF, scope=Scope.OWN)
def report_temporary_loss(op: Op, card_number: str) -> dict[str, Any]:
    """By 12333 or the portal (identified by SS number + query password); stops SS use at once."""
    card = lookup.card_by_number(op.session, card_number, op.actor)
    before = lifecycle.ss_transition(op, card, "report_temporary_loss")
    linked = _linked_bank_loss(op, card)
    op.audit("card", card.card_number, before=before, after=card.ss_status, person_id=card.person_id, linked_bank=linked)
    return {
        "card_number": mask_card_number(card.card_number),
        "ss_status": card.ss_status,
        "lapses_at": card.loss_expires_at,
        "linked_bank_status": linked,
        "reminder": bank_reminder(op, card, linked),
    }


@operation("ss_loss.report_formal", roles=CENTER_STAFF, scope=Scope.OWN)
def report_formal_loss(op: Op, card_number: str, presented_citizen_id: str, attorney_id: int | None = None,
                       agent_citizen_id: str | None = None) -> dict[str, Any]:
    """At a window with the cardholder's ID (an agent: with a power of attorney naming this, and their own
    ID, the one it names)."""
    card = lookup.card_by_number(op.session, card_number)
    person = lookup.person_by_id(op.session, card.person_id)
    lookup.check_presented_id(person, presented_citizen_id)
    agent = _agent(op, attorney_id, agent_citizen_id, person.id, "ss_loss.report_formal")
    before = lifecycle.ss_transition(op, card, "report_formal_loss")
    linked = _linked_bank_loss(op, card)
    op.audit("card", card.card_number, before=before, after=card.ss_status, person_id=person.id,
             on_behalf_of=person.id if agent else None, attorney_id=attorney_id, linked_bank=linked)
    return {
        "card_number": mask_card_number(card.card_number),
        "ss_status": card.ss_status,
        "linked_bank_status": linked,
        "reminder": bank_reminder(op, card, linked),
    }


def replacement_applied(op: Op, card: Card) -> bool:
    return (
        op.session.scalar(
            select(Card.id).where(Card.replaces_card_id == card.id, Card.ss_status != SsStatus.CANCELLED).limit(1)
        )
        is not None
    )


@operation("ss_loss.cancel", roles={Role.CARDHOLDER} | CENTER_STAFF, scope=Scope.OWN)
def cancel_ss_loss(op: Op, card_number: str, presented_citizen_id: str | None = None, attorney_id: int | None = None,
                   agent_citizen_id: str | None = None) -> dict[str, Any]:
    """Temporary: by phone, portal or window. Formal: only at a window with ID. Never once replaced. Only the
    cardholder in person: an agent (`attorney_id`, with their own ID) is refused, recorded."""
    card = lookup.card_by_number(op.session, card_number, op.actor)
    from . import attorney  # the counter area owns powers of attorney

    attorney.refuse_agent(op, attorney_id, card.person_id)
    if lifecycle.ss_status(op, card) == SsStatus.FORMAL_LOSS:
        if op.actor.role not in CENTER_STAFF or op.actor.channel not in (Channel.WINDOW, Channel.API):
            raise SscardError("forbidden")
    if op.actor.role in CENTER_STAFF:
        if not presented_citizen_id:
            raise SscardError("identity_mismatch")
        lookup.check_presented_id(lookup.person_by_id(op.session, card.person_id), presented_citizen_id)
    if replacement_applied(op, card):
        raise SscardError("replacement_exists")
    before = lifecycle.ss_transition(op, card, "cancel_loss")
    op.audit("card", card.card_number, before=before, after=card.ss_status, person_id=card.person_id)
    return {"card_number": mask_card_number(card.card_number), "ss_status": card.ss_status}


# ---------------------------------------------------------------- bank side


@operation("bank_loss.report_oral", roles={Role.CARDHOLDER} | BANK_STAFF, scope=Scope.OWN)
def report_oral_loss(op: Op, pan: str) -> dict[str, Any]:
    """By the bank's hotline (PAN + citizen ID + PIN or personal data, checked by the hotline)."""
    account = lookup.account_by_pan(op.session, pan, op.actor)
    access.require_bank(op.actor, account.bank_id, about=About("bank_account", account.pan, account.person_id))
    before = lifecycle.bank_transition(op, account, "report_oral_loss")
    linked = _linked_ss_loss(op, account)
    op.audit("bank_account", account.pan, before=before, after=account.status, person_id=account.person_id,
             linked_ss=linked)
    return {
        "pan": mask_pan(account.pan),
        "status": account.status,
        "lapses_at": account.loss_expires_at,
        "linked_ss_status": linked,
        "reminder": _ss_reminder(op, account, linked),
    }


@operation("bank_loss.report_written", roles=BANK_STAFF, scope=Scope.OWN)
def report_written_loss(op: Op, pan: str, presented_citizen_id: str) -> dict[str, Any]:
    """At any outlet of the card's bank, with ID; turns an oral loss into a written one."""
    account = lookup.account_by_pan(op.session, pan, op.actor)  # another bank's PAN: wrong_bank, found or not
    access.require_bank(op.actor, account.bank_id, about=About("bank_account", account.pan, account.person_id))
    lookup.check_presented_id(lookup.person_by_id(op.session, account.person_id), presented_citizen_id)
    before = lifecycle.bank_transition(op, account, "report_written_loss")
    linked = _linked_ss_loss(op, account)
    op.audit("bank_account", account.pan, before=before, after=account.status, person_id=account.person_id,
             linked_ss=linked)
    return {"pan": mask_pan(account.pan), "status": account.status, "linked_ss_status": linked,
            "reminder": _ss_reminder(op, account, linked)}


@operation("bank_loss.cancel", roles={Role.CARDHOLDER} | BANK_STAFF, scope=Scope.OWN)
def cancel_bank_loss(op: Op, pan: str, presented_citizen_id: str | None = None) -> dict[str, Any]:
    """At an outlet with ID; an oral loss may also be cancelled by the cardholder on the hotline of the
    card's bank (RULES §5), where the bank identified the caller (citizen ID, then the bank PIN or the number
    on record: services.hotline.bank_identify), and nowhere else: a cardholder's API token or portal session
    is the social security side's credential (the query password, initially the last six characters of the
    card number printed on the card), which lifted the bank's oral loss of a stolen card through the API
    (session 25's authorization and rules probes, each)."""
    account = lookup.account_by_pan(op.session, pan, op.actor)
    access.require_bank(op.actor, account.bank_id, about=About("bank_account", account.pan, account.person_id))
    if op.actor.role is Role.CARDHOLDER and (op.actor.channel is not Channel.HOTLINE_BANK
                                             or lifecycle.bank_status(op, account) != BankStatus.ORAL_LOSS):
        raise SscardError("forbidden")
    if op.actor.role in BANK_STAFF:
        if not presented_citizen_id:
            raise SscardError("identity_mismatch")
        lookup.check_presented_id(lookup.person_by_id(op.session, account.person_id), presented_citizen_id)
    before = lifecycle.bank_transition(op, account, "cancel_loss")
    op.audit("bank_account", account.pan, before=before, after=account.status, person_id=account.person_id)
    return {"pan": mask_pan(account.pan), "status": account.status}


# ---------------------------------------------------------------- lapses


@operation("loss.sweep_lapsed", roles={Role.SYSTEM, Role.OPERATOR}, scope=Scope.CITY)
def sweep_lapsed(op: Op) -> dict[str, Any]:
    """Record every temporary SS loss and oral bank loss whose days have run out (a nightly job)."""
    cards, accounts = lifecycle.lapse_losses(op)
    op.audit("sweep", "lapsed_losses", ss_cards=len(cards), bank_accounts=len(accounts))
    return {"ss_cards": len(cards), "bank_accounts": len(accounts)}


def _agent(op: Op, attorney_id: int | None, agent_citizen_id: str | None, person_id: int,
           operation_name: str) -> PowerOfAttorney | None:
    """An agent's action needs a power of attorney covering it and the agent's own ID (services.attorney)."""
    if attorney_id is None:
        return None
    from . import attorney  # the counter area owns powers of attorney

    return attorney.agent_for(op, attorney_id, agent_citizen_id, person_id, operation_name)
