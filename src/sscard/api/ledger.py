"""/api/v1 routes of the ledger area (owned by that area; see docs/ARCHITECTURE.md)."""

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1")
