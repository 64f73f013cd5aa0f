"""Reports: preview grids, galleries and summaries for the UI and for humans."""
