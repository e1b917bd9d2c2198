"""Shared drawing helpers (class palette, side-by-side panels); task-specific drawing lives in each task package."""
