"""Business rules that know no web, SQL or terminal."""
