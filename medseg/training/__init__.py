"""medseg.training (see DESIGN.md)."""
