"""`sscard bench`: sscard's workloads against a baseline measured in the same run on the same server.

One module per workload family, a runner and the report:
  baseline.py  (a) the native `pgbench` binary (TPC-B, scale 10) on PostgreSQL; on SQLite the plain
               stdlib `sqlite3` TPC-B loop at the synchronous level sscard uses;
  ledger.py    (b) service transfers group-committed, (c) HTTP terminal payments, (d) transfers one per
               transaction, on a small city of their own (20 cardholders);
  medical.py   (e) medical settlements over HTTP (pre-settlement + settlement), on the demo city;
  counter.py   (f) a mix at the counter through the staff API (deposits, withdrawals, replacement
               applications paying the production fee in cash), on the demo city;
  runner.py    runs them in one go and reports tps, p50, p99 and each ratio to the baseline.

Scratch databases only (a temporary SQLite file, or PostgreSQL databases it creates and drops); never
the configured one.
"""

# The city of (e) and (f): enough cardholders that (f)'s third of replacement applications (a card is
# replaced once) lasts a 10 s run at ~2,000 requests a second. With 5,000 (2,075 replaceable cards) the
# mix ran out of replacements early: 11-21% of (f)'s requests instead of a third, a lighter mix than its
# name (docs/PERFORMANCE.md, session 14). The city takes ~15 s more to build.
CITY_PEOPLE = 20_000
