"""Stage 7: run trained models on images (Keras, LiteRT or ONNX), explain them, export them."""
