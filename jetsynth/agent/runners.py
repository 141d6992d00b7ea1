"""The runner interface: one model on one backend, timed one query at a time.

The life of a runner: constructing it loads the model and says what it eats (`image_shape`, per
image, without the batch axis, and `dtype`); `prepare(batch, images=None)` binds one batch of
input (the given array of shape (batch,) + image_shape, else seeded random images);
`infer()` is one blocking query on it (copy in, run, copy out, wait: what is timed); `close()`
frees what the runner holds. `time_loop` applies the shared timing rules to `infer`; a runner
that owns its loop (trtexec) overrides it. The agent (onnxruntime, TensorRT, trtexec) and
`jetsynth bench` on the host (those plus torch, which only the host has) use the same interface.
"""

from .timing import summarize, time_queries


class Runner:
    """Base of every runner; see the module's docstring for the order of the calls."""

    name = "runner"
    image_shape = ()
    dtype = None
    batch = None

    def prepare(self, batch, images=None):
        raise NotImplementedError

    def infer(self):
        raise NotImplementedError

    def close(self):
        """Free what the runner holds; the default holds nothing that needs freeing."""

    def time_loop(self, warmup_seconds, min_seconds, min_queries):
        """The timing rules over `infer` on the prepared batch: the summary of `summarize`."""
        latencies, wall = time_queries(self.infer, warmup_seconds, min_seconds, min_queries)
        return summarize(latencies, wall, self.batch)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def random_images(batch, image_shape, dtype):
    """`batch` standard-normal images from a fixed seed, so every device times the same input."""
    import numpy as np

    return np.random.RandomState(0).standard_normal([batch] + list(image_shape)).astype(dtype)
