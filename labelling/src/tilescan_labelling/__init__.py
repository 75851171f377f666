"""tilescan's labelling tools: captures to Label Studio tasks, Label Studio exports to labelled batches."""
