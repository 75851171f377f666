"""tilescan's inference API: a tile photo in, a full-resolution defect mask out."""
