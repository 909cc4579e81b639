"""Stage 9 tests: the FastAPI app, its safety rails, the web page in a real browser, the load test."""
