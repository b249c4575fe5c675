"""oauth layer."""
