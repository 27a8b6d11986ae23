"""A replicated PostgreSQL formation run by pg_auto_failover: a monitor and two nodes (primary and
synchronous standby) under `var/ha/`, each on its own port, for `sscard ha up|status|down` and the
failover drill.

pg_auto_failover does the replication and the failover (its monitor promotes the standby when the
primary stops answering; a restarted old primary re-joins as standby): we only start, read and stop
it. pg_autoctl refuses to run as root, so as root every command runs as the `postgres` user.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..core.identifiers import ascii_digits

PG_BIN = Path(os.environ.get("SSCARD_HA_PG_BIN", "/usr/lib/postgresql/15/bin"))
# The monitor's port; the nodes take the next two (5432 is the machine's own PostgreSQL). Below Linux's
# ephemeral range (32768-60999): a port in it is also the local port of some outgoing connection now and
# then (the formation's own, the drill's clients', the tests'), and a node restarting while one holds it
# cannot bind it. The formation's ports used to be 55430-55432, inside that range.
DEFAULT_BASE_PORT = 25430
EPHEMERAL_START = 32768
NODES = ("node1", "node2")
DATABASE = "sscard"


class HaError(RuntimeError):
    """The formation could not be brought up, read or stopped (the message says what to do)."""


@dataclass(frozen=True)
class Formation:
    root: Path
    base_port: int = DEFAULT_BASE_PORT

    @classmethod
    def default(cls, root: str | Path | None = None, base_port: int | None = None) -> Formation:
        root = Path(root or os.environ.get("SSCARD_HA_DIR", "var/ha")).resolve()
        port = base_port or int(os.environ.get("SSCARD_HA_BASE_PORT", DEFAULT_BASE_PORT))
        return cls(root, port)

    # ------------------------------------------------------------ where things are

    @property
    def monitor_dir(self) -> Path:
        return self.root / "monitor"

    def node_dir(self, node: str) -> Path:
        return self.root / node

    def port(self, node: str) -> int:
        return self.base_port if node == "monitor" else self.base_port + 1 + NODES.index(node)

    @property
    def monitor_uri(self) -> str:
        return f"postgres://autoctl_node@127.0.0.1:{self.base_port}/pg_auto_failover?sslmode=disable"

    def url(self, database: str = DATABASE) -> str:
        """sscard's database URL: both nodes (SQLAlchemy's multi-host form, one `host=` per node), and
        libpq connects to the one that accepts writes."""
        hosts = "&".join(f"host=127.0.0.1:{self.port(n)}" for n in NODES)
        return f"postgresql+psycopg://postgres@/{database}?{hosts}&target_session_attrs=read-write"

    # ------------------------------------------------------------ running pg_autoctl

    def _cmd(self, *args: str) -> list[str]:
        cmd = ["pg_autoctl", *args]
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd

    def _env(self) -> dict:
        env = {**os.environ, "PATH": f"{PG_BIN}:{os.environ.get('PATH', '')}", "PG_CONFIG": str(PG_BIN / "pg_config")}
        if os.geteuid() == 0:  # pg_autoctl keeps its state under $HOME: the postgres user's own
            env["HOME"] = os.path.expanduser("~postgres")
            env.pop("XDG_CONFIG_HOME", None)
            env.pop("XDG_DATA_HOME", None)
        return env

    def autoctl(self, *args: str, check: bool = True, timeout: float = 60) -> str:
        proc = subprocess.run(self._cmd(*args), env=self._env(), capture_output=True, text=True, timeout=timeout,
                              cwd="/")
        if check and proc.returncode != 0:
            raise HaError(f"pg_autoctl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        return proc.stdout

    def _service(self, name: str, *args: str) -> None:
        """Start a pg_autoctl service in the background (`create ... --run`, or `run` for a node that
        exists), its output appended to var/ha/<name>.log."""
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115  handed to the child
        try:
            subprocess.Popen(self._cmd(*args), env=self._env(), stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, cwd="/", start_new_session=True)
        finally:
            log.close()

    def start(self, name: str, *create: str) -> None:
        """Run the monitor or a node: created the first time, started again afterwards."""
        pgdata = self.monitor_dir if name == "monitor" else self.node_dir(name)
        if (pgdata / "PG_VERSION").exists():
            self._service(name, "run", "--pgdata", str(pgdata))
        else:
            self._service(name, "create", *create, "--pgdata", str(pgdata), "--run")

    # ------------------------------------------------------------ up, status, down

    def check_installed(self) -> None:
        if shutil.which("pg_autoctl") is None or not (PG_BIN / "pg_ctl").exists():
            raise HaError("pg_autoctl or PostgreSQL 15 missing: `make ha-packages` (as root) installs "
                          "postgresql-15-auto-failover and pg-auto-failover-cli")

    def exists(self) -> bool:
        return (self.monitor_dir / "PG_VERSION").exists()

    def up(self, *, timeout: float = 180, say=print) -> None:
        """Create (first time) or start the monitor and both nodes, and wait until one node is primary
        and the other a synchronous standby."""
        self.check_installed()
        ours = [self.port(name) for name, path in self._dirs() if self._running(path)]
        busy = [p for p in self.busy_ports() if p not in ours]
        if busy:  # another formation or server there: ours would talk to it and never come up
            raise HaError(f"port {', '.join(map(str, busy))} already answers (another formation, or another "
                          f"PostgreSQL?): stop it, or set SSCARD_HA_BASE_PORT to a free range")
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            if subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(self.root)]).returncode != 0:
                raise HaError(f"the postgres user cannot write {self.root} (a parent directory is closed to it): "
                              "set SSCARD_HA_DIR to a directory it can reach")
        common = ["--auth", "trust", "--no-ssl", "--hostname", "127.0.0.1", "--pgctl", str(PG_BIN / "pg_ctl")]
        if not self.exists() and not any(self._running(d) for d in (self.monitor_dir, *map(self.node_dir, NODES))):
            # a new formation where an old one's directories were deleted (rm -rf var/ha, a new clone at the
            # same path): pg_autoctl's leftover state would have the nodes "dropped" and expecting the old
            # clusters' system identifiers, and they never start
            self._forget_state()
        try:
            self._start_all(common, timeout, say)
        except HaError as e:
            raise HaError(f"{e}\n{self.diagnosis()}") from None

    def _start_all(self, common: list[str], timeout: float, say) -> None:
        if not self._running(self.monitor_dir):
            say(f"monitor on port {self.base_port}")
            self.start("monitor", "monitor", "--pgport", str(self.base_port), *common)
            self._wait(self._monitor_ready, timeout, "the monitor to answer")
            self.tune_monitor()
        for node in NODES:
            if self._running(self.node_dir(node)):
                continue
            say(f"{node} on port {self.port(node)}")
            self.start(node, "postgres", "--pgport", str(self.port(node)), "--name", node, "--dbname", DATABASE,
                       "--monitor", self.monitor_uri, *common)
            if node == NODES[0] and not (self.node_dir(node) / "PG_VERSION").exists():
                # the first node must be registered (single) before the second one asks to join
                self._wait(lambda: any(n["name"] == NODES[0] for n in self.nodes()), timeout,
                           f"{node} to register")
        self.wait_healthy(timeout)

    @property
    def ports(self) -> list[int]:
        """The monitor's port, then each node's."""
        return [self.port("monitor"), *(self.port(n) for n in NODES)]

    def busy_ports(self) -> list[int]:
        """The formation's ports where something already accepts connections (ours, or a stranger)."""
        return [p for p in self.ports if _answers(p)]

    @staticmethod
    def free_base_port(start: int = DEFAULT_BASE_PORT + 100, stop: int = EPHEMERAL_START - 3) -> int:
        """A base port whose formation's ports nothing answers on: from `start` up to `stop`, then from
        just above the default up to `start`."""
        for base in (*range(start, stop, 10), *range(DEFAULT_BASE_PORT + 100, min(start, stop), 10)):
            if not Formation(Path(), base).busy_ports():
                return base
        raise HaError(f"no free formation ports below {stop}")

    def diagnosis(self, lines: int = 12) -> str:
        """What an operator (or a CI log) needs when the formation will not come up: the monitor's view,
        its last events, the tail of each service's log, and the disk space left."""
        out = [f"-- the monitor's view (ports {', '.join(map(str, self.ports))}):"]
        for args in (("show", "state"), ("show", "events", "--count", "8")):
            try:
                out.append(self.autoctl(*args, "--pgdata", str(self.monitor_dir), timeout=15).rstrip() or "(nothing)")
            except (HaError, OSError, subprocess.TimeoutExpired) as e:
                out.append(f"(pg_autoctl {' '.join(args)}: {str(e)[-300:]})")
        for name, _ in self._dirs():
            log = self.root / f"{name}.log"
            try:
                tail = log.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                tail = ["(no log)"]
            out.append(f"-- last lines of {log}:")
            out.extend(tail)
        with contextlib.suppress(OSError):
            free = shutil.disk_usage(self.root).free
            out.append(f"-- free disk space under {self.root}: {free // 2**20:,} MiB")
        return "\n".join(out)

    def wait_healthy(self, timeout: float) -> None:
        """Wait until one node is primary and the other a synchronous standby; raise HaError on timeout.

        A standby made by copying the primary (pg_autoctl's pg_basebackup, a new node or one whose old
        timeline cannot be rewound) first asks the primary for a checkpoint, a spread one: PostgreSQL paces
        it over checkpoint_completion_target x checkpoint_timeout (up to 4.5 minutes by default, however
        little it has to write; 94 s seen in a CI rehearsal, which then ran out of time). An explicit
        CHECKPOINT makes the one in progress finish at full speed, so while the formation is not healthy
        the primary is asked for one every few seconds (a few dirty pages on an idle node: harmless)."""
        self._wait(self.healthy, timeout, "a primary and a synchronous standby", meanwhile=self._checkpoint_primary)

    def _checkpoint_primary(self) -> None:
        import psycopg

        for n in self.nodes():
            if n["state"] in ("single", "wait_primary", "primary") and n["port"]:
                try:
                    with psycopg.connect(host="127.0.0.1", port=n["port"], user="postgres", dbname="postgres",
                                         autocommit=True, connect_timeout=3) as conn:
                        conn.execute("CHECKPOINT")
                except psycopg.Error:
                    pass  # not answering yet, or no longer primary: the next round asks again

    def nodes(self) -> list[dict]:
        """The monitor's view: one dict per node (name, port, reported and assigned state, lsn, health)."""
        try:
            out = self.autoctl("show", "state", "--json", "--pgdata", str(self.monitor_dir), timeout=15)
        except (HaError, OSError, subprocess.TimeoutExpired):  # no pg_autoctl, or no monitor answering
            return []
        try:
            rows = json.loads(out or "[]")
        except ValueError:
            return []
        return [{"name": r.get("nodename"), "port": r.get("nodeport"), "state": r.get("current_group_state"),
                 "goal": r.get("assigned_group_state"), "lsn": r.get("reported_lsn"), "tli": r.get("reported_tli"),
                 "health": r.get("health"), "sync": r.get("replication_quorum"),
                 "pid": self.postmaster_pid(r.get("nodename"))}
                for r in rows]

    def primary(self) -> str | None:
        """The node that takes writes (wait_primary: a primary whose standby is not back yet)."""
        for n in self.nodes():
            if n["state"] == n["goal"] and n["state"] in ("primary", "wait_primary"):
                return n["name"]
        return None

    def healthy(self) -> bool:
        """One node primary, the other secondary, both in their goal state."""
        states = sorted((n["state"], n["goal"]) for n in self.nodes())
        return states == [("primary", "primary"), ("secondary", "secondary")]

    def postmaster_pid(self, node: str | None) -> int | None:
        if node not in NODES:
            return None
        try:
            return int((self.node_dir(node) / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    # The monitor's health checks, tighter than pg_auto_failover's defaults (every 5 s, 2 retries 2 s
    # apart, unhealthy after 20 s): a dead primary is replaced in a few seconds instead of ~30.
    MONITOR_SETTINGS = {
        "pgautofailover.health_check_period": "1000",
        "pgautofailover.health_check_timeout": "1000",
        "pgautofailover.health_check_max_retries": "1",
        "pgautofailover.health_check_retry_delay": "500",
        "pgautofailover.node_considered_unhealthy_timeout": "3000",
        # how long the monitor waits for a primary it cannot reach to confirm its demotion before it
        # promotes the standby (default 30 s). Safe to shorten here: a primary cut off from the monitor
        # cannot acknowledge a commit either, since every commit waits for the synchronous standby,
        # which the monitor has just told to stop replicating from it.
        "pgautofailover.primary_demote_timeout": "3000",
    }

    def tune_monitor(self) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.base_port, user="postgres", dbname="pg_auto_failover",
                             autocommit=True, connect_timeout=10) as conn:
            for name, value in self.MONITOR_SETTINGS.items():
                conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
            conn.execute("SELECT pg_reload_conf()")

    def kill_node(self, node: str) -> int:
        """The crash the drill simulates: SIGKILL the node's pg_autoctl processes (else its keeper restarts
        PostgreSQL in place within a second or two, and the monitor never needs to fail over), then the
        postmaster. Returns the postmaster's pid."""
        pid = self.postmaster_pid(node)
        if pid is None:
            raise HaError(f"{node} has no running postmaster")
        for keeper in self._autoctl_pids(self.node_dir(node)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(keeper, signal.SIGKILL)
        os.kill(pid, signal.SIGKILL)
        for child in _children(pid):  # as a dead machine would: its backends hold the port until they notice
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        return pid

    def _autoctl_pids(self, pgdata: Path) -> list[int]:
        """The pg_autoctl processes serving that data directory: the supervisor (its command line names
        the directory) and its services (its children, which rename themselves), not PostgreSQL."""
        parents: dict[int, int] = {}
        supervisors = []
        for proc in Path("/proc").iterdir():
            if not ascii_digits(proc.name):
                continue
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                parents[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if argv and argv[0].endswith(b"pg_autoctl") and str(pgdata).encode() in argv:
                supervisors.append(int(proc.name))
        postmaster = self.postmaster_pid(pgdata.name)
        return supervisors + [pid for pid, ppid in parents.items() if ppid in supervisors and pid != postmaster]

    def down(self, *, remove: bool = False, say=print) -> None:
        """Stop the nodes and the monitor (fast shutdown); `remove` also deletes var/ha."""
        dirs = self._dirs()
        for name, path in dirs:
            if self._autoctl_pids(path):
                say(f"stopping {name}")
                self.autoctl("stop", "--fast", "--pgdata", str(path), check=False)
        deadline = time.monotonic() + 60
        for name, path in dirs:
            while self._autoctl_pids(path) and time.monotonic() < deadline:
                time.sleep(0.2)
            left = self._autoctl_pids(path)
            pid = self.postmaster_pid(name) if name != "monitor" else None
            if left:  # still there: stop it for certain
                say(f"{name} did not stop: killing it")
                for p in left + ([pid] if pid else []):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p, signal.SIGKILL)
        if remove:
            self._forget_state()
            if self.root.exists():
                shutil.rmtree(self.root)
                say(f"removed {self.root}")

    # ------------------------------------------------------------ helpers

    def _dirs(self) -> list[tuple[str, Path]]:
        """Each service's name and data directory, nodes first (the order they are stopped in)."""
        return [*((n, self.node_dir(n)) for n in NODES), ("monitor", self.monitor_dir)]

    def _forget_state(self) -> None:
        """Delete pg_autoctl's own state about this formation's directories, which it keeps under $HOME
        (the postgres user's), apart from the data directories."""
        home = Path(self._env()["HOME"]) if "HOME" in self._env() else Path.home()
        for path in (*(self.node_dir(n) for n in NODES), self.monitor_dir):
            for base in (home / ".config" / "pg_autoctl", home / ".local" / "share" / "pg_autoctl"):
                shutil.rmtree(base / str(path).lstrip("/"), ignore_errors=True)

    def _running(self, pgdata: Path) -> bool:
        """The pg_autoctl service of that directory runs (its pid file names a live process)."""
        pidfile = self._service_pidfile(pgdata)
        if pidfile is None:
            return False
        try:
            pid = int(pidfile.read_text().split()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return False
        return True

    def _service_pidfile(self, pgdata: Path) -> Path | None:
        """pg_autoctl writes its pid file under $XDG_RUNTIME_DIR or /tmp, in a directory named after
        the data directory's path."""
        for base in (os.environ.get("XDG_RUNTIME_DIR"), "/tmp"):
            if base:
                candidate = Path(base) / "pg_autoctl" / str(pgdata).lstrip("/") / "pg_autoctl.pid"
                if candidate.exists():
                    return candidate
        return None

    def _monitor_ready(self) -> bool:
        """The monitor answers and its pgautofailover extension is installed."""
        import psycopg

        try:
            with psycopg.connect(host="127.0.0.1", port=self.base_port, user="postgres", dbname="pg_auto_failover",
                                 connect_timeout=5) as conn:
                return bool(conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'pgautofailover'").fetchone())
        except psycopg.Error:
            return False

    @staticmethod
    def _wait(cond, timeout: float, what: str, meanwhile=None, every: float = 3.0) -> None:
        """Poll `cond` until it holds; `meanwhile`, if given, is called every `every` seconds while it does not."""
        deadline = time.monotonic() + timeout
        last = 0.0
        while time.monotonic() < deadline:
            if cond():
                return
            if meanwhile is not None and time.monotonic() - last > every:
                last = time.monotonic()
                meanwhile()
            time.sleep(0.5)
        raise HaError(f"timed out after {timeout:.0f} s waiting for {what}")


def _answers(port: int) -> bool:
    """Something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _children(pid: int) -> list[int]:
    out = []
    for proc in Path("/proc").iterdir():
        if ascii_digits(proc.name):
            try:
                if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(proc.name))
            except (OSError, ValueError, IndexError):
                continue
    return out
