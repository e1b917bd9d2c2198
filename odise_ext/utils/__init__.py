"""Shared helpers: drawing (class palette, side-by-side panels; task-specific drawing lives in each
task package), atomic file writes (atomic_io), reading files without executing code (safe_load)
and checkpointable RNG state (rng_state)."""
