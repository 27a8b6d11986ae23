"""Every PDF sscard prints, in one package, set in one CJK font (`drawing.cjk_font`, chosen by the one
setting SSCARD_PDF_FONT), wrapped by one line breaker and drawn with one small helper set:

- receipts: the window's production-fee and card-collection receipts
- statements: the bank account statement
- bank_slips: the bank counter's deposit and withdrawal slips (回单)
- medical_slip: the medical settlement slip (医保结算单)
- certificate: the proof of insurance (参保证明)

reportlab is imported by these modules only, and they are imported by the first document a channel
prints, never at start-up.
"""
