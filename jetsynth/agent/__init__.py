"""The device agent: the program `jetsynth deploy` ships to a Jetson, as a package of small modules.

The modules run on the device's own Python (3.6 on JetPack 4.6) and import only the standard
library at module level (numpy, TensorRT, pycuda, cuda-python and onnxruntime lazily) and each
other with plain relative imports, which `bundle.py` strips when it joins them into the one file
that is shipped (`jetsynth_agent.py`). The host imports the shared parts from here: the timing
rules (`timing`), the runner interface (`runners`), the onnxruntime and TensorRT runners and the
engine builder. Importing this package imports nothing else.
"""
