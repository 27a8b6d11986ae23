"""`uvicorn sscard.asgi:application` (what `sscard serve` runs): settings and policy from the environment."""

import gc

# No collection while the app is built: start-up allocates ~a million objects and frees almost none, and
# the collector's passes over them were ~0.1-0.2 s of every restart (the budget is 2 s to the first answer).
gc.disable()

from .composition import create_app  # noqa: E402  (after the collector is off)

application = create_app()

# Everything built at start-up (models, routes, compiled statements: a large heap) lives as long as the
# process. Frozen, it is left out of the garbage collector's full collections, which otherwise stopped
# every request of the server for 60-100 ms a few times a minute under load (measured here with
# gc.callbacks: two gen-2 collections of 63 and 105 ms in 6 s of payments; 14 ms after freezing).
# No gc.collect() first: after the imports it found nothing to free and cost ~0.1 s of every restart.
gc.freeze()
gc.enable()
