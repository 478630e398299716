"""The running operator process: start-up, HTTP server and its routes, metrics, log format."""
