"""`sscard iso8583 ...`: the ISO 8583 gateway for ATMs and POS terminals (docs/ISO8583.md)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    iso_app = typer.Typer(no_args_is_help=True, help="The ISO 8583 gateway for ATMs and POS terminals.")
    app.add_typer(iso_app, name="iso8583")

    @iso_app.command("serve")
    def serve(host: str = "127.0.0.1", port: int = 8583,
              log_level: str = typer.Option("info", help="info: a line a message (no PAN, PIN or MAC); warning")) -> None:
        """Listen for terminals' ISO 8583 messages (two-byte length framing)."""
        import logging

        from ..iso8583 import server
        from . import load_app

        logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
        sscard = load_app()
        try:
            server.serve(sscard, host, port)
        finally:
            sscard.close()

    @iso_app.command("keys")
    def keys(terminal: str) -> None:
        """The key ceremony: print an ATM's or POS terminal's PIN key (TPK) and MAC key (TAK) as two
        components each, with their check values; the audit log records who printed them (check values
        only). Give each component to a different custodian to load into the terminal."""
        from ..core.errors import SscardError
        from ..core.roles import CLI_OPERATOR
        from ..services import staff
        from . import console, fail, load_app

        try:
            out = staff.issue_terminal_keys(load_app(), CLI_OPERATOR, terminal)
        except SscardError as exc:
            fail(exc)
            return
        console.print(f"terminal {out['terminal']} ({out['kind']}), ISO 8583 keys, double-length TDES:")
        for purpose, key in out["keys"].items():
            first, second = key["components"]
            console.print(f"  {purpose.upper()}  component 1 {first}\n       component 2 {second}\n"
                          f"       check value {key['kcv']}")

    @iso_app.command("send")
    def send(
        terminal: str,
        kind: str = typer.Argument(..., help="purchase | withdraw | deposit | balance | sign-on | reverse"),
        pan: str = typer.Option("", help="the card's PAN"),
        amount: str = typer.Option("", help="the amount in yuan, e.g. 100.00 (reverse: the original's)"),
        original: str = typer.Option("", help="reverse: the original's STAN and field 7 as printed, e.g. 000123:1207123015"),
        dispensed: str = typer.Option("0", help="reverse: what was really dispensed or paid, in yuan (field 95)"),
        advice: bool = typer.Option(False, help="reverse: send a reversal advice (0420) instead of a request (0400)"),
        of: str = typer.Option("withdraw", help="reverse: what the original was, withdraw (ATM) or purchase (POS)"),
        port: int = 8583,
        host: str = "127.0.0.1",
    ) -> None:
        """Act as the terminal (a simulator on a machine holding the server's key): send one message to the
        gateway and print its answer; asks for the PIN without echoing it."""
        import secrets

        from ..core.identifiers import ascii_digits
        from ..core.money import format_yuan, yuan_to_fen
        from ..iso8583.client import PROCESSING_CODES, Terminal, balances
        from . import console, err_console, load_app

        sscard = load_app()
        term = Terminal(terminal, sscard.secrets.terminal_key(terminal, "tpk"),
                        sscard.secrets.terminal_key(terminal, "tak"), host=host, port=port,
                        stan=secrets.randbelow(999_998))  # each run its own trace number
        try:
            if kind == "sign-on":
                answer = term.sign_on()
            elif kind == "reverse":
                stan, _, sent = original.partition(":")
                if not (len(stan) == 6 and ascii_digits(stan) and len(sent) == 10 and ascii_digits(sent)):
                    err_console.print("[red]--original STAN:MMDDhhmmss, as `send` printed it[/red]")
                    raise typer.Exit(2)
                first = {"t": "0200", "2": pan, "3": PROCESSING_CODES["purchase" if of == "purchase" else "withdraw"],
                         "4": f"{yuan_to_fen(amount):012d}", "7": sent, "11": stan}
                answer = term.send(term.reversal(first, dispensed_fen=yuan_to_fen(dispensed) if dispensed.strip("0.") else 0,
                                                 advice=advice))
            elif kind in PROCESSING_CODES:
                fen = yuan_to_fen(amount) if kind != "balance" else None  # a bad amount before the PIN is typed
                pin = None if kind == "deposit" else typer.prompt("PIN", hide_input=True)
                answer = term.send(term.message(kind, pan, fen, pin))
            else:
                err_console.print(f"[red]unknown kind {kind!r}[/red]")
                raise typer.Exit(2)
        except (OSError, ValueError) as exc:
            err_console.print(f"[red]{type(exc).__name__}: {exc}[/red]")
            raise typer.Exit(1) from None
        finally:
            term.close()
        found = balances(answer)
        console.print(f"{answer['t']} response code {answer.get('39')}, stan {answer.get('11')}:{answer.get('7')}"
                      + (f", authorization {answer['38']}" if answer.get("38") else "")
                      + (f", balance {format_yuan(found['01'])}, available {format_yuan(found['02'])}" if found else ""))
        raise typer.Exit(0 if answer.get("39") == "00" else 1)
