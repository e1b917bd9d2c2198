"""Drawing and checkpoint helpers (visualization, depth_vis, vpd_vis, png_vis, odise_checkpoint),
atomic file writes (atomic_io), reading files without executing code (safe_load) and
checkpointable RNG state (rng_state)."""
