"""medseg.cli (see DESIGN.md)."""
