"""Storage backends: each offers a locked batch transaction, not business logic."""
