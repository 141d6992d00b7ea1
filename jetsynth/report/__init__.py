"""What a run shows a person: tables, plots and the report JSON."""
