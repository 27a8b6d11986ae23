"""sscard: the financial social security card (社会保障卡 + UnionPay debit card)."""

__version__ = "0.1.0"
