"""`uvicorn sscard.asgi:application` (what `sscard serve` runs): settings and policy from the environment."""

import gc

# No collection while the app is built: start-up allocates ~a million objects and frees almost none, and
# the collector's passes over them were ~0.1-0.2 s of every restart (the budget is 2 s to the first answer).
gc.disable()

import os  # noqa: E402
import signal  # noqa: E402

from .config import SUPERVISOR_ENV  # noqa: E402
from .core.identifiers import ascii_digits  # noqa: E402


def end_with_supervisor() -> None:
    """A worker of `sscard serve --workers N` ends when its supervisor does, however that ends. Killed with
    SIGKILL, the supervisor cannot stop its workers: they went on serving on the port, re-parented to init,
    and the restart a process manager makes failed with "Address already in use" (session 21's operator).
    Linux's parent-death signal sends each worker SIGTERM instead (it finishes its requests and goes)."""
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if not supervisor or not ascii_digits(supervisor):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: a process manager must stop the whole group
        return
    if os.getppid() != int(supervisor):  # it died before the signal was asked for
        os.kill(os.getpid(), signal.SIGTERM)


end_with_supervisor()

from .composition import create_app  # noqa: E402  (after the collector is off)

application = create_app()

# Everything built at start-up (models, routes, compiled statements: a large heap) lives as long as the
# process. Frozen, it is left out of the garbage collector's full collections, which otherwise stopped
# every request of the server for 60-100 ms a few times a minute under load (measured here with
# gc.callbacks: two gen-2 collections of 63 and 105 ms in 6 s of payments; 14 ms after freezing).
# No gc.collect() first: after the imports it found nothing to free and cost ~0.1 s of every restart.
gc.freeze()
gc.enable()
