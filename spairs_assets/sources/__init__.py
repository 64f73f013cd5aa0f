"""Seed image sources: demo data, pictograms, folder/manifest ingestion."""
