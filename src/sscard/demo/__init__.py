"""The demo city behind `sscard demo`: banks, outlets, centers, staff, terminals and N cardholders.

- `city`: the fixed part of the city (two banks, their outlets, three service centers, staff of every
  role, terminals of every kind), created through the services like an operator would.
- `people`: N cardholders with their cards and bank accounts in a realistic mix of states, generated
  from the seed and loaded in bulk.
- `run`: puts it together, then lets each area add its own data (`sscard.demo.<area>.populate`).

Kept free of imports so that an area module (`sscard.demo.ledger`, ...) is cheap to import.
"""
