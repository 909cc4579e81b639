"""Stage 7b: the FastAPI app (JSON API + a no-build web page) that serves one trained model."""
