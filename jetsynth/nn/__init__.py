"""Networks: tracing a model's structure, compacting it, moving weights between shapes."""
