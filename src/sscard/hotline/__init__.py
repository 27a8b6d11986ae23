"""The 12333 hotline and the bank hotlines as IVR menus: one engine, menus as data (12333.toml, bank.toml)."""
