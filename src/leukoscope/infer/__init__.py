"""Stage 5: run trained models on images (Keras, LiteRT or ONNX; one model or an ensemble spec), explain
them, export them. Everything that scores, fits or reports on predictions comes after it."""
