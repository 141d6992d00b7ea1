"""Networks and data: tracing a model's structure, compacting it, datasets."""
