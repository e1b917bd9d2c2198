"""Drawing and checkpoint helpers (visualization, depth_vis, vpd_vis, png_vis, odise_checkpoint)."""
