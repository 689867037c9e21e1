"""Results are files: writing a run directory, aggregating its rows, reading one back (the one
reader for compare, reports, annotate, the lab and the notebook API), and formatting numbers."""
