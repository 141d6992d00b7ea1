"""onnxruntime on the device (or the host): a session on one execution provider and its runner."""

from .errors import AgentError
from .runners import Runner, random_images


def ort_session(onnx_path, provider, threads):
    """An onnxruntime session; errors from a model the runtime cannot load become one line."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
              "trt": "TensorrtExecutionProvider"}
    if provider == "auto":
        chosen = "CUDAExecutionProvider" if "CUDAExecutionProvider" in available else "CPUExecutionProvider"
    else:
        chosen = wanted[provider]
    if chosen not in available:
        raise AgentError(f"onnxruntime {ort.__version__} here has no {chosen}")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(onnx_path, sess_options=options, providers=[chosen])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise AgentError(f"onnxruntime {ort.__version__} cannot load the model: {ort_reason(exc)}") from None


def ort_reason(exc):
    """The readable end of an onnxruntime error (its C++ source location and signature cut)."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if ".cc:" in text and ") " in text:
        text = text.rsplit(") ", 1)[1]
    return text


class OrtRunner(Runner):
    """An onnxruntime session with one image input; one query = `session.run` on the prepared
    batch (float16 input where the model takes float16, else float32)."""

    def __init__(self, session, name="onnxruntime"):
        import numpy as np

        self.session = session
        self.name = name
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise AgentError(f"the model has {len(inputs)} inputs; the agent times one-input models")
        spec = inputs[0]
        rest = spec.shape[1:]
        if not all(isinstance(d, int) and d > 0 for d in rest):
            raise AgentError(f"input '{spec.name}' has shape {spec.shape}; only the batch axis may be free")
        self.input_name = spec.name
        self.fixed_batch = spec.shape[0] if isinstance(spec.shape[0], int) else None
        self.image_shape = tuple(rest)
        self.dtype = np.dtype(np.float16 if spec.type == "tensor(float16)" else np.float32)
        self.feed = None

    def prepare(self, batch, images=None):
        if self.fixed_batch is not None and batch != self.fixed_batch:
            raise AgentError(f"the model's batch size is fixed at {self.fixed_batch}; ask for "
                             f"--batch {self.fixed_batch}")
        if images is None:
            images = random_images(batch, self.image_shape, self.dtype)
        self.batch = batch
        self.feed = {self.input_name: images}

    def infer(self):
        self.session.run(None, self.feed)

    def close(self):
        self.feed = None
