"""One module per top-level view or dialog."""
