# The step runtime image plus PyTorch, for GPU steps (e.g. examples/gpu_training.ipynb's train step, whose
# image:cellpipe/runtime-gpu:0.1.0 tag names it). PyTorch's CUDA wheels bring their own CUDA libraries; the
# node's NVIDIA driver comes from the cluster (NVIDIA's device plugin / GPU operator).
#
# Build the runtime image first, then, from the repository root:
#   docker build -f hub_config/images/runtime-gpu.Dockerfile -t cellpipe/runtime-gpu:0.1.0 .
ARG RUNTIME_IMAGE=cellpipe/runtime:0.1.0
FROM ${RUNTIME_IMAGE}

LABEL org.opencontainers.image.ref.name="cellpipe/runtime-gpu:0.1.0" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.description="cellpipe step runtime with PyTorch, for GPU steps"

USER 0
WORKDIR /opt/cellpipe
# torch pinned as in constraints.txt (its CUDA libraries are pinned exactly by torch itself); the base image
# forbids indexes at run time, so this build step allows one explicitly
RUN PIP_NO_INDEX=0 pip install -c constraints.txt torch==2.13.0 \
    && python -c "import torch"

ENV PIP_NO_INDEX=1
USER 1000:100
WORKDIR /home/jovyan
