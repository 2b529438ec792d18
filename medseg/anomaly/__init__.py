"""medseg.anomaly (see DESIGN.md)."""
