"""GPU buffers and a stream for the TensorRT runner, from pycuda or else cuda-python: allocate,
copy in and out asynchronously on one stream, wait, free."""

from .errors import AgentError


class _PycudaBuffers:
    def __init__(self):
        import pycuda.autoinit  # noqa: F401  (creates the context)
        import pycuda.driver as cuda

        self.cuda = cuda
        self.stream = cuda.Stream()

    def alloc(self, nbytes):
        return self.cuda.mem_alloc(nbytes)

    def pointer(self, buffer):
        return int(buffer)

    def to_device(self, buffer, host):
        self.cuda.memcpy_htod_async(buffer, host, self.stream)

    def to_host(self, host, buffer):
        self.cuda.memcpy_dtoh_async(host, buffer, self.stream)

    def handle(self):
        return self.stream.handle

    def sync(self):
        self.stream.synchronize()

    def free(self, buffer):
        buffer.free()


class _CudartBuffers:
    def __init__(self):
        from cuda import cudart

        self.cudart = cudart
        self.stream = self._check(cudart.cudaStreamCreate())

    def _check(self, result):
        if int(result[0]) != 0:
            raise AgentError(f"CUDA call failed: {result[0]}")
        return result[1] if len(result) > 1 else None

    def alloc(self, nbytes):
        return self._check(self.cudart.cudaMalloc(nbytes))

    def pointer(self, buffer):
        return int(buffer)

    def to_device(self, buffer, host):
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.cudart.cudaMemcpyAsync(buffer, host.ctypes.data, host.nbytes, kind, self.stream))

    def to_host(self, host, buffer):
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.cudart.cudaMemcpyAsync(host.ctypes.data, buffer, host.nbytes, kind, self.stream))

    def handle(self):
        return int(self.stream)

    def sync(self):
        self._check(self.cudart.cudaStreamSynchronize(self.stream))

    def free(self, buffer):
        self._check(self.cudart.cudaFree(buffer))


def cuda_buffers():
    """Device buffers from pycuda, else cuda-python; None when neither is installed."""
    for kind in (_PycudaBuffers, _CudartBuffers):
        try:
            return kind()
        except ImportError:
            continue
    return None
