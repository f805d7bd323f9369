"""Open models: the instances unimodel runs itself (see docs/open-models.md)."""
