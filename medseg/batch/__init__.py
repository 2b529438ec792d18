"""medseg.batch (see DESIGN.md)."""
