"""Web pages (Jinja2 + htmx): the home page, the consoles and the cardholder portal."""
