"""One function per business operation, each in one transaction with one audit record.

Channels call these and nothing else: `app.run(cards.collect, actor, card_number, ...)` or simply
`cards.collect(app, actor, ...)`.
"""
