"""What a hotline's actions are written against: the menu's data (nodes, options, texts), the context an
action runs in (`Ctx`: the app, the line, the call's state and node), what it answers (`Outcome`) and the
registry an action joins with `@handler("name")`. The engine (engine.py) runs menus over this; the
actions (actions.py) fill the registry; neither imports the other's insides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import SscardError
from ..services import access
from ..services import hotline as svc
from ..services.app import App

NODE_TYPES = {"menu", "input", "action", "say", "agent", "hangup"}
AFTER_IDENTIFY = "$after_identify"
SPOKEN_SLOTS = ("card_tail", "pan_tail", "name")  # the only slots a prompt may say (never an ID or a digest)


@dataclass(frozen=True)
class Option:
    go: str
    lang: str | None = None
    when: str | None = None  # a condition (CONDITIONS) under which the menu offers this option
    say: str | None = None  # the text (menu.text) offering it: the menu's prompt says it as {option_<key>}
    operation: str | None = None  # the operation it leads to: offered only when the frame lets the caller run it


@dataclass(frozen=True)
class Node:
    name: str
    type: str
    say: dict[str, str] = field(default_factory=dict)
    options: dict[str, Option] = field(default_factory=dict)
    action: str | None = None
    on: dict[str, str] = field(default_factory=dict)
    next: str | None = None
    back: str | None = None
    agent: bool = True
    requires: str | None = None
    num_digits: int | None = None
    finish: str = "#"
    secret: bool = False
    slot: str | None = None
    timeout: int | None = None
    max_attempts: int | None = None
    topic: str = ""


@dataclass(frozen=True)
class Menu:
    name: str
    start: str
    main: str
    identify: str
    timeout: int
    max_timeouts: int
    max_invalid: int
    max_attempts: int
    back_key: str
    agent_key: str
    idle_minutes: int
    voices: dict[str, str]
    text: dict[str, dict[str, str]]
    nodes: dict[str, Node]
    repeat_key: str = "#"
    input_repeat_key: str = "**"  # an input prompt said again: keys no entry can be (`#` alone is silence)


@dataclass
class Outcome:
    """What an action answers: a route name (looked up in the node's `on`) and lines to say."""

    name: str
    lines: list[str] = field(default_factory=list)


Handler = Callable[["Ctx", str | None], Outcome]
HANDLERS: dict[str, Handler] = {}
Condition = Callable[["Ctx"], bool]
CONDITIONS: dict[str, Condition] = {}
"""Whether a menu offers an option (`when`): true when it applies to the caller, or when who the caller is
is not known yet. An option not offered is not said; its key still leads where the option goes, whose
node tells the caller why there is nothing to do."""


def handler(name: str):
    def register(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        return fn

    return register


def condition(name: str):
    def register(fn: Condition) -> Condition:
        CONDITIONS[name] = fn
        return fn

    return register


class _Params(dict):
    def __missing__(self, key: str) -> str:
        return ""


@dataclass
class Ctx:
    """What an action sees: the app, the line, the call's state (mutable) and the node it runs for."""

    app: App
    menu: Menu
    info: dict  # the line: {"line": ..., "bank": {...} | None}
    state: dict
    node: Node

    @property
    def lang(self) -> str:
        return self.state.get("lang") or "zh"

    @property
    def slots(self) -> dict:
        return self.state.setdefault("slots", {})

    @property
    def line(self) -> str:
        return self.info["line"]

    def params(self, **extra: Any) -> _Params:
        policy = self.app.policy
        out = _Params(
            temporary_days=policy.ss_loss.temporary_days,
            oral_days=policy.bank_loss.oral_days,
            query_max=policy.query_password.max_failures,
            query_lock_minutes=policy.query_password.lock_minutes,
        )
        # what a loss on this line does to the card's other side (policy loss.linked; RULES §5): the menu's
        # text `other_side`, or `other_side_linked` in a city that links the two sides' losses
        side = "other_side_linked" if policy.loss.linked else "other_side"
        if side in self.menu.text:
            out["other_side"] = self.menu.text[side][self.lang]
        bank = self.info.get("bank")
        if bank:
            out.update(bank=bank["name"] if self.lang == "zh" else bank["name_en"], hotline=bank["hotline"],
                       bank_code=bank["code"])
        out.update({k: v for k, v in self.slots.items() if k in SPOKEN_SLOTS})
        out.update(extra)
        return out

    def offers(self) -> dict[str, str]:
        """The node's conditional options as its prompt says them: `option_<key>`, their text when
        offered, "" when not."""
        out = {}
        for key, option in self.node.options.items():
            if option.say:
                offered = ((option.operation is None or self.frame_allows(option.operation))
                           and (option.when is None or CONDITIONS[option.when](self)))
                out[f"option_{key}"] = self.menu.text[option.say][self.lang] if offered else ""
        return out

    def frame_allows(self, operation: str) -> bool:
        """Whether the frame would let this caller run `operation` as far as how they were identified goes
        (access.allowed_before_first_change: the initial query password, the bank line's personal data), asked
        of the frame's own rule rather than a list of the menu's: a caller identified with the initial query
        password was offered the SS password change and then refused it (session 29). True for a caller not
        identified yet (who they are is not known)."""
        person_id = self.state.get("person_id")
        if not person_id:
            return True
        caller = svc.holder(person_id, self.slots.get("name", ""), self.line, self.state.get("identified_by", ""))
        return access.allowed_before_first_change(caller, operation)

    def text(self, key: str, **params: Any) -> str:
        return self.menu.text[key][self.lang].format_map(self.params(**params))

    def error(self, err: SscardError) -> str:
        return err.message(self.lang)
