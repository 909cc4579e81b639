"""Stage 7 tests: predict, TTA, Grad-CAM, ONNX export."""
