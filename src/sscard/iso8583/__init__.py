"""The ISO 8583 gateway: ATMs and POS terminals speaking ISO 8583 (1987, ASCII) over TCP.

A thin channel, as the REST terminal API is: it turns a message into a call of the same declared
operations (bank.withdraw, bank.deposit, bank.purchase, bank.balance, bank.reverse_terminal) through the
same group-commit frame, so authorization, the terminal kind's rights, PIN lockout, limits, idempotency and
the audit record are the frame's, not this package's. What is its own: the message format (`gateway.SPEC`), the terminal's
authentication by the MAC under its key, the PIN read out of an enciphered PIN block, and the mapping of a
refusal's code to an ISO response code. See docs/ISO8583.md.
"""
