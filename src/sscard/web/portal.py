"""Web pages of the portal (owned by that area; see docs/ARCHITECTURE.md)."""

from fastapi import APIRouter

router = APIRouter()
