"""Stage 7b tests: the FastAPI app, its safety rails, the web page in a real browser, the load test."""
