# Device agent for JetPack 4.6.x (L4T R32.7: Jetson TX1, Nano): TensorRT 8.2, CUDA 10.2,
# Python 3.6. Build on the Jetson (or with arm64 emulation) from the repository root:
#   docker build -f docker/agent-l4t-r32.7.Dockerfile -t jetsynth-agent:r32.7 .
# Run with the NVIDIA runtime, the model in a mounted folder:
#   docker run --runtime nvidia --rm -v "$PWD:/models" jetsynth-agent:r32.7 run /models/net.onnx
FROM nvcr.io/nvidia/l4t-tensorrt:r8.2.1-runtime

# numpy for the agent, pycuda for TensorRT buffers (built against JetPack's CUDA 10.2).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-numpy python3-pip python3-dev build-essential \
    && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/local/cuda/bin:${PATH} CPATH=/usr/local/cuda/include
RUN python3 -m pip install --no-cache-dir pycuda==2020.1

# The agent's modules, joined into the one file `jetsynth deploy` ships (the bundler needs only
# the device's Python).
COPY jetsynth/agent /opt/jetsynth/agent
RUN python3 /opt/jetsynth/agent/bundle.py /opt/jetsynth/jetsynth_agent.py
WORKDIR /models
ENTRYPOINT ["python3", "/opt/jetsynth/jetsynth_agent.py"]
CMD ["facts"]
