"""The running operator process: start-up, HTTP server, metrics and logging."""
