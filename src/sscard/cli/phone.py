"""`sscard phone 12333|bank:<code>`: a telephone in the terminal, driven by the same IVR engine.

The prompts are printed; the person types keys and Enter (a final # is the finishing key and may be
left out); Enter alone is silence (a timeout). Secrets (passwords, PINs) are typed without echo.
The services run in-process on the database of SSCARD_DATABASE_URL.
"""

from __future__ import annotations

import uuid

import typer
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from ..core.errors import SscardError

HINT = {
    "zh": "按键后回车（末尾#可省略）；直接回车表示没有按键；* 返回，0 人工服务，菜单中 # 重听；Ctrl-D 挂机",
    "en": "Type keys then Enter (a final # may be left out); Enter alone is silence; * back, 0 agent, # on a menu hears it again; Ctrl-D hangs up",
}


def run_call(sscard, line: str, console: Console, read_keys=None, caller: str = "") -> str:
    """Play one call on the console; answers the call's final status (ended, agent, hung_up). `caller` is
    the number the call comes from (an agent calls it back); none: a withheld number, never queued."""
    from ..hotline.calls import hang_up, take_turn

    sid = "SIM" + uuid.uuid4().hex
    read_keys = read_keys or (lambda prompt, secret: console.input(prompt, password=secret))
    result = take_turn(sscard, line, sid, None, caller=caller)
    console.print(Text(f"☎  {line}  ({sid[:11]})", style="bold"))
    while True:
        reply = result.reply
        for said in reply.lines:
            console.print(Text("🔊 " + said))
        if reply.prompt:
            console.print(Panel(Text(reply.prompt), border_style="cyan"))
        if reply.hangup or reply.gather is None:
            console.print(Text("[挂机 / call ended]", style="bold red"))
            return result.status
        secret = reply.gather.secret
        console.print(Text(HINT.get(reply.lang, HINT["zh"]), style="dim"))
        prompt = ("密码（不显示）> " if reply.lang == "zh" else "secret (hidden)> ") if secret else "按键 keys> "
        try:
            keys = read_keys(prompt, secret)
        except (EOFError, KeyboardInterrupt):
            console.print(Text("[挂机 / hung up]", style="bold red"))
            hang_up(sscard, line, sid)
            return "hung_up"
        keys = keys.strip()
        if reply.gather.finish_on_key and keys.endswith(reply.gather.finish_on_key) and len(keys) > 1:
            keys = keys[: -len(reply.gather.finish_on_key)]
        result = take_turn(sscard, line, sid, keys, caller=caller, turn=result.turn)


def register(app: typer.Typer) -> None:
    @app.command("phone")
    def phone(line: str = typer.Argument(..., help="12333, or bank:<code> (or a bank's hotline number)"),
              caller: str = typer.Option("", "--from", help="the number calling (+8613800138000), which an "
                                         "agent calls back; none: a withheld number, which is not queued")) -> None:
        """Call a hotline from the terminal: the 12333 IVR or a bank's (the number on the card)."""
        from . import fail, load_app

        sscard = load_app()
        try:
            run_call(sscard, line, Console(), caller=caller)
        except SscardError as exc:
            fail(exc)
        finally:
            sscard.close()

    @app.command("hotline-sweep")
    def hotline_sweep(idle_minutes: int = typer.Option(10, min=1, help="end calls untouched this long (minutes, 1 or more)")) -> None:
        """End hotline calls left idle (callers who hung up unseen) and drop what they held."""
        from ..core.roles import CLI_OPERATOR
        from ..services import hotline
        from . import console, load_app

        sscard = load_app()
        try:
            console.print(f"ended {hotline.sweep_idle_calls(sscard, CLI_OPERATOR, idle_minutes)['ended']} idle call(s)")
        finally:
            sscard.close()
