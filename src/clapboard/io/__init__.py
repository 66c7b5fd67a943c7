"""Filesystem primitives: durable atomic writes, batch locks, self-checking journals."""
