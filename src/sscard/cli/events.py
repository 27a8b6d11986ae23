"""`sscard events ...`: the outbox of events for partners (issue 18)."""

from __future__ import annotations

import os
import signal
import threading

import typer


def register(app: typer.Typer) -> None:
    events_app = typer.Typer(no_args_is_help=True, help="Events for partners: the outbox and its NATS publisher.")
    app.add_typer(events_app, name="events")

    @events_app.command("publish")
    def publish(
        once: bool = typer.Option(False, "--once", help="publish what is pending, then stop"),
        url: str = typer.Option("", help="NATS server (default: SSCARD_NATS_URL)"),
    ) -> None:
        """Publish the outbox to NATS JetStream (stream SSCARD) from the last acknowledged event on."""
        from ..services import publisher
        from . import console, err_console, load_app

        url = url or os.environ.get(publisher.ENV_URL, "")
        if not url:
            err_console.print(f"[red]no NATS server: give --url or set {publisher.ENV_URL}[/red]")
            raise typer.Exit(2)
        sscard = load_app()
        pub = publisher.Publisher(sscard, url)
        if once:
            try:
                count = publisher.run_coroutine(pub.run_once())
            except Exception as exc:  # noqa: BLE001  NATS unreachable or not acknowledging
                err_console.print(f"[red]publishing stopped at event {publisher.position(sscard)}: "
                                 f"{type(exc).__name__} {exc}[/red]")
                raise typer.Exit(1) from None
            console.print(f"published {count}; last acknowledged event {publisher.position(sscard)}")
            return
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        console.print(f"publishing events to {url} (Ctrl-C stops)")
        publisher.run_coroutine(pub.run(stop))
        console.print(f"stopped; last acknowledged event {publisher.position(sscard)}")
