"""The REST API under /api/v1 and the web pages: thin channels over the services."""
