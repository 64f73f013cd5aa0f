"""Stage 5, curation: which verified candidates become SafetyPairs, split and versioned."""
