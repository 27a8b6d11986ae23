"""`sscard demo`: migrate if needed, build the city, load N cardholders, let each area add its data.

The report it returns (written by `sscard demo --json FILE`) has these keys:

- `seed`, `people`, `database` (URL without password), `created_at`, `seconds` and `cpu_seconds` (per step)
- `determinism`: what the seed fixes and what it does not (API tokens are random)
- `banks`, `outlets`, `centers`: the city
- `staff`: username, role, name, where (center/outlet code), demo password, an API token
- `terminals`: code, kind, name, where, API token
- `sample_cardholders`: name, citizen ID, card number, PAN, both sides' states, initial passwords
- `counts`: persons, cards by SS state, accounts by bank state
- `areas`: what each area's `sscard.demo.<area>.populate` reported (or that it is not there yet)
"""

from __future__ import annotations

import importlib
import random
import time
from collections.abc import Callable

from sqlalchemy import Engine, func, inspect, select

from ..models.foundation import Person
from ..services.app import App
from .city import create_city
from .people import city_refs, load_people, make_batches, refresh_samples, state_counts

AREAS = ("ledger", "medical", "insurance")
DATA_MONTHS_BACK = 36  # the areas' demo data goes this far back (insurance: three years of contributions); older
# rows (opening deposits of cards activated years ago) land in the DEFAULT partitions on PostgreSQL
REPORT_KEYS = ("seed", "people", "database", "created_at", "seconds", "cpu_seconds", "determinism", "banks",
               "outlets", "centers", "staff", "terminals", "sample_cardholders", "counts", "areas")


class DemoRefused(Exception):
    """The database already has people and --if-empty was not given."""


def ensure_schema(app: App) -> bool:
    """Run the migrations (what `sscard init` does): builds a missing schema, upgrades an older one, and is
    a no-op at head. True when the schema was missing."""
    missing = not inspect(app.db.engine).has_table("persons")
    app.db.migrate()
    return missing


def people_count(app: App) -> int:
    with app.db.session() as s:
        return s.scalar(select(func.count()).select_from(Person))


def bulk_engine(app: App) -> Engine:
    """The engine the demo's bulk loads write with.

    Each load fills its tables in one transaction: hundreds of thousands of rows COPYed, each checked
    against its foreign keys. Under SERIALIZABLE (the engine's default) every row those checks read takes
    a predicate lock in PostgreSQL's shared table (max_pred_locks_per_transaction x max_connections
    entries, shared by every transaction on the server): a million cardholders, and once a year of
    history over 50,000, failed with "out of shared memory" while other SERIALIZABLE work ran on the same
    server. A bulk load nobody else reads needs none: READ COMMITTED."""
    if app.db.dialect == "postgresql":
        return app.db.engine.execution_options(isolation_level="READ COMMITTED")
    return app.db.engine


def populate_areas(app: App, seed: int, notes: Callable[[str], None] | None = None) -> dict:
    """Call `sscard.demo.<area>.populate(engine, rng, today)` for each area module that exists."""
    out: dict = {}
    engine = bulk_engine(app)
    for area in AREAS:
        name = f"{__package__}.{area}"
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            out[area] = "not present"
            continue
        populate = getattr(module, "populate", None)
        if populate is None:
            out[area] = "no populate()"
            continue
        started = time.perf_counter()
        rng = random.Random(f"sscard-demo:{seed}:{area}")
        counts = populate(engine, rng, app.clock.today())
        out[area] = dict(counts or {})
        if notes:
            notes(f"{area}: {out[area]} ({time.perf_counter() - started:.1f} s)")
    return out


def run_demo(app: App, people: int, seed: int, *, if_empty: bool = False, chunk_size: int = 5000,
             on_start: Callable[[int], None] | None = None, on_chunk: Callable[[int], None] | None = None,
             notes: Callable[[str], None] | None = None, history_months: int = 0,
             history_rates: dict | None = None) -> dict:
    """Build the demo city. Returns the report, or {"skipped": ...} with if_empty on a peopled database."""
    if people < 0:
        raise ValueError("people must be 0 or more")
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}
    started, cpu_started = time.perf_counter(), time.process_time()
    migrated = ensure_schema(app)
    existing = people_count(app)
    if existing:
        if if_empty:
            return {"skipped": True, "existing_people": existing}
        raise DemoRefused(f"the database already has {existing} people; the demo fills an empty city "
                          "(use --if-empty to leave it alone, or another database)")
    timings["migrate"] = time.perf_counter() - started
    cpu["migrate"] = time.process_time() - cpu_started

    step, cpu_step = time.perf_counter(), time.process_time()
    if app.db.engine.dialect.name == "postgresql":  # the months the demo writes into, before it writes
        from ..services import partitions

        partitions.ensure(app.db.engine, app.clock.today(), months_back=max(history_months, DATA_MONTHS_BACK) + 1)
    city = create_city(app)
    refs = city_refs(app)
    make_batches(app, refs, seed)
    timings["city"] = time.perf_counter() - step
    cpu["city"] = time.process_time() - cpu_step

    step, cpu_step = time.perf_counter(), time.process_time()
    if on_start:
        on_start(people)
    loaded = load_people(app, refs, people, seed, chunk_size=chunk_size, on_chunk=on_chunk)
    timings["people"] = time.perf_counter() - step
    cpu["people"] = time.process_time() - cpu_step

    step, cpu_step = time.perf_counter(), time.process_time()
    areas = populate_areas(app, seed, notes)
    timings["areas"] = time.perf_counter() - step
    cpu["areas"] = time.process_time() - cpu_step

    if history_months:
        from . import history

        step, cpu_step = time.perf_counter(), time.process_time()
        rng = random.Random(f"sscard-demo:{seed}:history")
        areas["history"] = history.populate(bulk_engine(app), rng, app.clock.today(), months=history_months,
                                            rates=history_rates)
        timings["history"] = time.perf_counter() - step
        cpu["history"] = time.process_time() - cpu_step
        if notes:
            notes(f"history: {areas['history']} ({timings['history']:.1f} s)")
    if app.db.engine.dialect.name == "postgresql":
        # a bulk load leaves the new partitions without statistics until autovacuum gets to them, and the
        # planner then scans instead of probing (measured: a statement by PAN took 1.4 s instead of 9 ms)
        step = time.perf_counter()
        app.db.analyze_filled()
        timings["analyze"] = time.perf_counter() - step
    timings["total"] = time.perf_counter() - started
    cpu["total"] = time.process_time() - cpu_started

    return {
        "seed": seed,
        "people": people,
        "database": app.db.engine.url.render_as_string(hide_password=True),
        "created_at": app.clock.now().isoformat(),
        "schema_created": migrated,
        "seconds": {k: round(v, 2) for k, v in timings.items()},  # wall clock
        "cpu_seconds": {k: round(v, 2) for k, v in cpu.items()},  # this process, all threads
        "determinism": (
            "The same seed gives the same people, citizen IDs, card numbers, identification codes, PANs and "
            "states (dates are counted back from the clock's now). API tokens are random, issued by "
            "services.staff.issue_token, and shown only here."
        ),
        "banks": city["banks"],
        "outlets": city["outlets"],
        "centers": city["centers"],
        "staff": city["staff"],
        "terminals": city["terminals"],
        "sample_cardholders": refresh_samples(app, loaded["samples"]),
        "counts": state_counts(app) | {"loaded": loaded["totals"]},
        "areas": areas,
    }
