"""medseg.measure (see DESIGN.md)."""
