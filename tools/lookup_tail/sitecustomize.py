"""Experiment switches for tools/lookup_tail/lookup_tail.py, read by the server it starts (on PYTHONPATH as
`sitecustomize`, so Python imports it first in every process): never for production. Each switches off a
guarantee to see what it costs, which is why none of them is a setting of sscard.

- EXP_NO_SEALER=1: the server starts no audit-chain sealer (records stay unsealed).
- EXP_NO_VIEWED=1: staff reads write no `viewed` audit record (no access log).
- EXP_TIME_WRITER=FILE: the group-commit writer's `_process` and `_attempt_viewed`, wall and CPU ms, a line each.
"""

import os

if os.environ.get("EXP_NO_SEALER"):
    import sscard.services.audit_chain as _chain

    _chain.start_sealer = lambda app: None

if os.environ.get("EXP_NO_VIEWED"):
    import sscard.services.operation as _operation

    _operation.VIEW_AUDITED = frozenset()

if os.environ.get("EXP_TIME_WRITER"):
    import time as _time

    import sscard.services.batching as _batching

    _log = open(os.environ["EXP_TIME_WRITER"], "a")  # noqa: SIM115  open for the process's life

    def _timed(name, original):
        def run(self, *args, **kwargs):
            wall, cpu = _time.perf_counter(), _time.thread_time()
            try:
                return original(self, *args, **kwargs)
            finally:
                _log.write(f"{name} {(_time.perf_counter() - wall) * 1000:.3f} {(_time.thread_time() - cpu) * 1000:.3f}\n")
                _log.flush()
        return run

    for _name in ("_attempt_viewed", "_process"):
        setattr(_batching.Batcher, _name, _timed(_name, getattr(_batching.Batcher, _name)))
