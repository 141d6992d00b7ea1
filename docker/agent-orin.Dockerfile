# Device agent for JetPack 6 (L4T R36: Jetson Orin): TensorRT 10, CUDA 12, Python 3.10.
# Build on the Orin from the repository root:
#   docker build -f docker/agent-orin.Dockerfile -t jetsynth-agent:orin .
#   docker run --runtime nvidia --rm -v "$PWD:/models" jetsynth-agent:orin run /models/net.onnx
FROM nvcr.io/nvidia/l4t-jetpack:r36.4.0

# numpy for the agent, cuda-python for TensorRT 10 buffers.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-numpy python3-pip \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m pip install --no-cache-dir cuda-python==12.6.0

# The agent's modules, joined into the one file `jetsynth deploy` ships (the bundler needs only
# the device's Python).
COPY jetsynth/agent /opt/jetsynth/agent
RUN python3 /opt/jetsynth/agent/bundle.py /opt/jetsynth/jetsynth_agent.py
WORKDIR /models
ENTRYPOINT ["python3", "/opt/jetsynth/jetsynth_agent.py"]
CMD ["facts"]
