"""Metrics of post-unlearning behaviour. Each documents its direction (higher or lower is better)."""
