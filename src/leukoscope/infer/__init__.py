"""Stage 7: run trained models on images (torch or ONNX), explain them, export them."""
