"""Approvers, admins and aggregators: pending extension requests, waivers, the matrix and the
consolidated report."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
