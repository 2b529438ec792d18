"""medseg.viz (see DESIGN.md)."""
