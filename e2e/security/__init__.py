"""Security basics of a running cluster: per-run SSH keys, no insecure key."""
