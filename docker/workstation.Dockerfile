# x86 workstation: CUDA + TensorRT 10 + jetsynth, for `jetsynth evolve --bench ort-trt` and
# `jetsynth build`. Build from the repository root:
#   docker build -f docker/workstation.Dockerfile -t jetsynth:workstation .
#   docker run --gpus all --rm -it -v "$PWD/runs:/work/runs" jetsynth:workstation jetsynth --help
FROM nvcr.io/nvidia/tensorrt:24.08-py3

ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /opt/jetsynth

# openssh-client: `jetsynth deploy` talks to Jetsons through the system ssh.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends openssh-client \
    && rm -rf /var/lib/apt/lists/*

# torch with CUDA from PyTorch's index first, so jetsynth's unpinned `torch` is already met;
# onnxruntime-gpu replaces the CPU build for the ort-cuda / ort-trt backends.
RUN pip install --index-url https://download.pytorch.org/whl/cu124 torch==2.4.1 \
    && pip install pycuda==2024.1.2 onnxruntime-gpu==1.19.2

COPY pyproject.toml README.md ./
COPY jetsynth ./jetsynth
RUN pip install . \
    && pip uninstall -y onnxruntime \
    && pip install --force-reinstall --no-deps onnxruntime-gpu==1.19.2 \
    && jetsynth --help > /dev/null

WORKDIR /work
CMD ["jetsynth", "--help"]
