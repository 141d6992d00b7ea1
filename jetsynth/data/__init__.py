"""Data: the dataset record, its loaders (built-in sets, image folders, Python objects) and the
batches streamed to training."""
