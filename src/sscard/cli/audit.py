"""`sscard audit seal` and `sscard audit verify [--seal]`: the tamper-evident audit chain."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    from . import console, err_console, load_app

    audit_app = typer.Typer(no_args_is_help=True, help="The audit log's hash chain: seal and verify.")
    app.add_typer(audit_app, name="audit")

    @audit_app.command("seal")
    def seal() -> None:
        """Link every audit record not yet sealed into the chain (the server does this every second)."""
        import time

        from ..services import audit_chain

        started = time.perf_counter()
        sealed = audit_chain.seal(load_app())
        console.print(f"sealed {sealed} records in {time.perf_counter() - started:.2f} s", soft_wrap=True)

    @audit_app.command("verify")
    def verify(
        seal_first: bool = typer.Option(False, "--seal", help="seal what is unsealed first"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Re-compute the chain; exit 1 naming the first broken record."""
        from ..services import audit_chain

        out = audit_chain.verify(load_app(), seal_first=seal_first)
        if as_json:
            console.print_json(json.dumps(out))
        else:
            console.print(f"checked {out['checked']} sealed records; {out['unsealed']} not yet sealed", soft_wrap=True)
            head = out["head"]
            console.print(f"head: seal_seq {head['seal_seq']} hash {head['hash']}", soft_wrap=True)
        if not out["ok"]:
            broken = out["broken"]
            if broken["reason"] == "unaccounted":
                err_console.print(f"[red]broken[/red]: {broken['count']} audit records are neither sealed nor "
                                  "queued for sealing (inserted around the log's trigger)", soft_wrap=True)
            else:
                err_console.print(f"[red]broken[/red] at audit record id {broken['id']} "
                                  f"(seal_seq {broken['seal_seq']}): {_WHY[broken['reason']]}", soft_wrap=True)
            raise typer.Exit(1)
        if not as_json:
            console.print("chain ok")


_WHY = {
    "gap": "a seal before it is missing (deleted or re-numbered)",
    "missing": "the record it seals is gone (deleted, or its id or time changed)",
    "prev_hash": "its prev_hash is not the previous record's hash",
    "hash": "its columns do not give its hash (the record was changed)",
}
