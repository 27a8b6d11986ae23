"""/api/v1 routes of the hotline area (owned by that area; see docs/ARCHITECTURE.md)."""

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1")
