"""The `moetune` command line."""
