"""From a genome to a fast file: ONNX export, benchmark runners, TensorRT."""
