"""One IVR engine for every hotline: menus, prompts and transitions are data (a TOML file per hotline).

A call is a state (which node, language, counters, who was identified, non-secret slots) and each turn
is one key entry (or none: a timeout). `Engine.step(state, digits)` moves the state and answers a
`Reply`: lines to say, then a prompt to gather keys for, or a hang-up. Channels render the Reply (TwiML
for the voice webhook, a Rich terminal for `sscard phone`) and keep the state through
services.hotline, so any server process can take a call's next turn.

Node types: `menu` (one key chooses an option), `input` (digits, finished by # or a fixed count, handed
to an action), `action` (runs at once, routes on its outcome), `say` (announce, go on), `agent`
(queue for a human), `hangup`. Conventions on every menu/input node: `*` goes back (the node's `back`),
`0` asks for a human agent (unless `agent = false`), `#` on a menu says it again (a caller who did not
catch it; never counted as a wrong key), and so does `**` on an input (the line's `input_repeat_key`: a
caller who did not catch what to type; every input prompt ends with the line's text `input_repeat`, which
says so, and the keys are never an entry, nor a try); no input re-prompts, and after `max_timeouts` in a
row the call ends; wrong keys `max_invalid` times in a row end it too; an input refused `max_attempts`
times goes to its `too_many` route. A node with `requires = "identified"` sends an
unidentified caller through the line's identification first and then on to it.

A menu option may name the `operation` it leads to (with a `say` text offering it as {option_<key>}): the menu
offers it only when the frame would let the caller run that operation (script.Ctx.frame_allows, the frame's
access.allowed_before_first_change), so a caller identified with the initial query password is not offered
what the frame then refuses.

Entered secrets (`secret = true` inputs) go straight to their action and are never put in the state.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from ..core.errors import LANGUAGES
from ..services import access
from ..services.app import App
from ..services.operation import on_call
from . import actions  # noqa: F401  (fills the handler registry the menus are checked against)
from .script import (
    AFTER_IDENTIFY,
    CONDITIONS,
    HANDLERS,
    NODE_TYPES,
    Ctx,
    Menu,
    Node,
    Option,
    Outcome,
)


class MenuError(ValueError):
    """A menu file that does not hold together (unknown target, missing text, unknown action)."""


@dataclass
class Gather:
    num_digits: int | None
    finish_on_key: str
    timeout: int
    secret: bool


@dataclass
class Reply:
    lang: str
    lines: list[str] = field(default_factory=list)  # said before the prompt
    prompt: str | None = None  # said while gathering keys (the caller may press at once)
    gather: Gather | None = None
    hangup: bool = False


# ---------------------------------------------------------------- loading menus


def _node(name: str, raw: dict) -> Node:
    unknown = set(raw) - {"type", "say", "options", "action", "on", "next", "back", "agent", "requires",
                          "num_digits", "finish", "secret", "slot", "timeout", "max_attempts", "topic"}
    if unknown:
        raise MenuError(f"node {name}: unknown keys {sorted(unknown)}")
    options = {}
    for key, target in (raw.get("options") or {}).items():
        options[str(key)] = Option(target) if isinstance(target, str) else \
            Option(target["go"], target.get("lang"), target.get("when"), target.get("say"), target.get("operation"))
    return Node(
        name=name,
        type=raw.get("type", ""),
        say=dict(raw.get("say") or {}),
        options=options,
        action=raw.get("action"),
        on=dict(raw.get("on") or {}),
        next=raw.get("next"),
        back=raw.get("back"),
        agent=bool(raw.get("agent", True)),
        requires=raw.get("requires"),
        num_digits=raw.get("num_digits"),
        finish=raw.get("finish", "#"),
        secret=bool(raw.get("secret", False)),
        slot=raw.get("slot"),
        timeout=raw.get("timeout"),
        max_attempts=raw.get("max_attempts"),
        topic=raw.get("topic", ""),
    )


def parse_menu(name: str, text: str) -> Menu:
    data = tomllib.loads(text)
    line = data.get("line", {})
    nodes = {n: _node(n, raw) for n, raw in (data.get("nodes") or {}).items()}
    menu = Menu(
        name=name,
        start=line["start"],
        main=line["main"],
        identify=line["identify"],
        timeout=int(line.get("timeout", 6)),
        max_timeouts=int(line.get("max_timeouts", 3)),
        max_invalid=int(line.get("max_invalid", 3)),
        max_attempts=int(line.get("max_attempts", 3)),
        back_key=line.get("back_key", "*"),
        agent_key=line.get("agent_key", "0"),
        repeat_key=line.get("repeat_key", "#"),
        input_repeat_key=line.get("input_repeat_key", "**"),
        idle_minutes=int(line.get("idle_minutes", 10)),
        voices=dict(line.get("voices") or {}),
        text={k: dict(v) for k, v in (data.get("text") or {}).items()},
        nodes=nodes,
    )
    check_menu(menu)
    return menu


def check_menu(menu: Menu) -> None:
    """Every target a node names exists, every prompt has both languages, every action is known."""

    def target_ok(t: str | None, where: str) -> None:
        if t is not None and t != AFTER_IDENTIFY and t not in menu.nodes:
            raise MenuError(f"{menu.name}: {where} goes to unknown node {t!r}")

    for required in ("no_input", "no_input_goodbye", "invalid", "too_many_goodbye", "agent_queued",
                     "agent_already_queued", "agent_no_number"):
        if required not in menu.text:
            raise MenuError(f"{menu.name}: text {required!r} missing")
    if any(node.type == "input" for node in menu.nodes.values()) and "input_repeat" not in menu.text:
        raise MenuError(f"{menu.name}: text 'input_repeat' missing (every input prompt says how to hear it again)")
    for key, t in menu.text.items():
        if set(t) != set(LANGUAGES):
            raise MenuError(f"{menu.name}: text {key!r} needs zh and en")
    for t in (menu.start, menu.main, menu.identify):
        target_ok(t, "line")
    for node in menu.nodes.values():
        if node.type not in NODE_TYPES:
            raise MenuError(f"{menu.name}: node {node.name} has type {node.type!r}")
        if node.type in ("menu", "input", "say", "hangup") and set(node.say) != set(LANGUAGES):
            raise MenuError(f"{menu.name}: node {node.name} needs say.zh and say.en")
        if node.type in ("input", "action") and node.action not in HANDLERS:
            raise MenuError(f"{menu.name}: node {node.name} has unknown action {node.action!r}")
        if node.type in ("input", "action") and not node.on:
            raise MenuError(f"{menu.name}: node {node.name} has no routes (on)")
        for key, opt in node.options.items():
            if key in (menu.back_key, menu.agent_key, menu.repeat_key):
                raise MenuError(f"{menu.name}: node {node.name} option {key} is the line's back, agent or repeat key")
            target_ok(opt.go, f"{node.name}.options.{key}")
            if opt.when is not None and opt.when not in CONDITIONS:
                raise MenuError(f"{menu.name}: node {node.name} option {key} has unknown condition {opt.when!r}")
            if opt.operation is not None and opt.operation not in access.DECLARATIONS:
                raise MenuError(f"{menu.name}: node {node.name} option {key} leads to unknown operation "
                                f"{opt.operation!r}")
            if opt.operation is not None and opt.say is None:
                raise MenuError(f"{menu.name}: node {node.name} option {key} names an operation but no text (say) "
                                "to offer it by")
            if opt.say is not None and opt.say not in menu.text:
                raise MenuError(f"{menu.name}: node {node.name} option {key}: text {opt.say!r} missing")
            if opt.say is not None and any(f"{{option_{key}}}" not in said for said in node.say.values()):
                raise MenuError(f"{menu.name}: node {node.name} must say option {key} as {{option_{key}}}")
        for key, t in node.on.items():
            target_ok(t, f"{node.name}.on.{key}")
        target_ok(node.next, f"{node.name}.next")
        target_ok(node.back, f"{node.name}.back")
        if node.type == "say" and not node.next:
            raise MenuError(f"{menu.name}: say node {node.name} needs next")


@lru_cache(maxsize=8)
def load_menu(name: str) -> Menu:
    """A packaged menu file: `12333` or `bank`."""
    text = resources.files("sscard.hotline").joinpath(f"{name}.toml").read_text(encoding="utf-8")
    return parse_menu(name, text)


# ---------------------------------------------------------------- running a call


class Engine:
    def __init__(self, app: App, menu: Menu, info: dict):
        self.app = app
        self.menu = menu
        self.info = info

    # -- entry points

    def start(self, state: dict) -> Reply:
        state.update(status="active", turn=0, timeouts=0, invalid=0, attempts=0)
        state.setdefault("lang", "zh")
        state.setdefault("slots", {})
        return self._enter(state, self.menu.start, [])

    def reprompt(self, state: dict) -> Reply:
        """The same turn asked for again (a retried webhook): say the current prompt, change nothing."""
        if state["status"] != "active":
            return Reply(state["lang"], hangup=True)
        return self._prompt(state, self.menu.nodes[state["node"]], [])

    def expire(self, state: dict) -> Reply:
        state["status"] = "ended"
        return Reply(state["lang"], lines=[self._text(state, "no_input_goodbye")], hangup=True)

    def step(self, state: dict, digits: str | None) -> Reply:
        if state["status"] != "active":
            return Reply(state["lang"], hangup=True)
        node = self.menu.nodes[state["node"]]
        state["turn"] += 1
        digits = (digits or "").strip()
        if not digits:
            state["timeouts"] += 1
            if state["timeouts"] >= self.menu.max_timeouts:
                return self._end(state, [self._text(state, "no_input_goodbye")])
            return self._prompt(state, node, [self._text(state, "no_input")])
        state["timeouts"] = 0
        if digits == self.menu.agent_key and node.agent:
            return self._agent(state, node, [])
        if digits == self.menu.back_key and node.back:
            return self._enter(state, node.back, [])
        if node.type == "menu" and digits == self.menu.repeat_key:
            return self._prompt(state, node, [])  # heard again, as often as asked: not a wrong key
        if node.type == "input" and digits == self.menu.input_repeat_key:
            return self._prompt(state, node, [])  # heard again: not an entry, nor a try
        if node.type == "menu":
            option = node.options.get(digits)
            if option is None:
                state["invalid"] += 1
                if state["invalid"] >= self.menu.max_invalid:
                    return self._end(state, [self._text(state, "too_many_goodbye")])
                return self._prompt(state, node, [self._text(state, "invalid")])
            if option.lang:
                state["lang"] = option.lang
            return self._enter(state, option.go, [])
        outcome = self._run(state, node, digits)
        del digits  # an entered secret goes no further than its action
        return self._route(state, node, outcome, [])

    # -- moving between nodes

    def _route(self, state: dict, node: Node, outcome: Outcome, lines: list[str]) -> Reply:
        lines = lines + outcome.lines
        if outcome.name == "hangup":
            return self._end(state, lines)
        target = self._next_of(node, outcome)
        if target == node.name and node.type == "input":
            state["attempts"] += 1
            limit = node.max_attempts or self.menu.max_attempts
            if state["attempts"] < limit:
                return self._prompt(state, node, lines)
            target = node.on.get("too_many")
            if target is None:
                return self._end(state, lines + [self._text(state, "too_many_goodbye")])
        return self._enter(state, target, lines)

    def _next_of(self, node: Node, outcome: Outcome) -> str:
        """Where an action's outcome leads: its route in the node's `on`, else the node's default."""
        target = node.on.get(outcome.name) or node.on.get("default")
        if target is None:
            raise MenuError(f"{self.menu.name}: node {node.name} has no route for outcome {outcome.name!r}")
        return target

    def _enter(self, state: dict, target: str, lines: list[str]) -> Reply:
        for _ in range(50):
            if target == AFTER_IDENTIFY:
                target = state.get("after_identify") or self.menu.main
                state["after_identify"] = ""
            node = self.menu.nodes[target]
            if node.requires and not self._meets(state, node.requires):
                state["after_identify"] = target
                target = self.menu.identify
                continue
            state.update(node=node.name, attempts=0, invalid=0)
            if node.type in ("menu", "input"):
                return self._prompt(state, node, lines)
            if node.type == "say":
                lines = lines + [self._say(state, node)]
                target = node.next
                continue
            if node.type == "hangup":
                return self._end(state, lines + [self._say(state, node)])
            if node.type == "agent":
                return self._agent(state, node, lines + ([self._say(state, node)] if node.say else []))
            # action
            if node.say:
                lines = lines + [self._say(state, node)]
            outcome = self._run(state, node, None)
            lines = lines + outcome.lines
            if outcome.name == "hangup":
                return self._end(state, lines)
            target = self._next_of(node, outcome)
        raise MenuError(f"{self.menu.name}: a loop of nodes without a prompt at {target!r}")

    @staticmethod
    def _meets(state: dict, requires: str) -> bool:
        if requires == "identified":
            return bool(state.get("person_id"))
        raise MenuError(f"unknown requirement {requires!r}")

    def _run(self, state: dict, node: Node, value: str | None) -> Outcome:
        ctx = Ctx(self.app, self.menu, self.info, state, node)
        with on_call(state["call_sid"]):  # every operation an action runs names this call in its record
            return HANDLERS[node.action](ctx, value)

    def _agent(self, state: dict, node: Node, lines: list[str]) -> Reply:
        """Queue the caller for an agent who calls them back: only a number that can be called back is
        queued, once (a number already waiting hears since when and where it stands). A withheld number
        (no number, "anonymous", the terminal's) is told what to do instead and goes on in the menu."""
        from ..core.clock import local_text
        from ..services import hotline as svc

        number = svc.callback_number_of(state.get("callback_number", ""))
        if not number:
            lines = lines + [self._text(state, "agent_no_number")]
            if node.type in ("menu", "input"):
                return self._prompt(state, node, lines)
            return self._enter(state, node.back or self.menu.main, lines)
        with on_call(state["call_sid"]):
            out = svc.request_agent(self.app, svc.gateway(self.info["line"]), state["call_sid"], node.name,
                                    topic=node.topic or node.name, callback_number=number)
        state["status"] = "agent"
        if out["queued"]:
            said = self._text(state, "agent_queued", position=out["position"])
        else:
            said = self._text(state, "agent_already_queued", position=out["position"],
                              requested=local_text(out["requested_at"], state.get("lang") or "zh"))
        return Reply(state["lang"], lines=lines + [said], hangup=True)

    def _end(self, state: dict, lines: list[str]) -> Reply:
        state["status"] = "ended"
        return Reply(state["lang"], lines=lines, hangup=True)

    def _prompt(self, state: dict, node: Node, lines: list[str]) -> Reply:
        if node.type == "menu":
            gather = Gather(1, "", node.timeout or self.menu.timeout, False)
        else:
            gather = Gather(node.num_digits, node.finish, node.timeout or self.menu.timeout, node.secret)
        prompt = self._say(state, node)
        if node.type == "input":  # every input prompt says how to hear it again, in the line's one wording
            prompt = f"{prompt}{'' if (state.get('lang') or 'zh') == 'zh' else ' '}{self._text(state, 'input_repeat')}"
        return Reply(state["lang"], lines=lines, prompt=prompt, gather=gather)

    # -- texts

    def _ctx(self, state: dict, node: Node | None = None) -> Ctx:
        return Ctx(self.app, self.menu, self.info, state, node or self.menu.nodes[state["node"]])

    def _say(self, state: dict, node: Node) -> str:
        ctx = self._ctx(state, node)
        return node.say[state.get("lang") or "zh"].format_map(ctx.params(**ctx.offers()))

    def _text(self, state: dict, key: str, **params: Any) -> str:
        return self._ctx(state).text(key, **params)
