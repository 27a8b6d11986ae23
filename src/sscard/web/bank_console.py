"""Web pages of the bank-outlet console (owned by that area; see docs/ARCHITECTURE.md)."""

from fastapi import APIRouter

router = APIRouter()
