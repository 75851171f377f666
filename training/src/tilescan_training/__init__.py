"""tilescan's training pipeline; each DVC stage is a module in :mod:`tilescan_training.stages`."""
