"""medseg.metrics (see DESIGN.md)."""
