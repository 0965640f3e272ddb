"""The officer's pages: his agency's tasks, a task, submit, extension request, decisions."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
