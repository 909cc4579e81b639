"""Stage 9: the FastAPI app (JSON API + a no-build web page) that serves one trained model (or ensemble)."""
