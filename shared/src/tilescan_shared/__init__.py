"""Code both sides of tilescan run: training's evaluation and the inference service."""
