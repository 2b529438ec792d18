"""medseg.data (see DESIGN.md)."""
