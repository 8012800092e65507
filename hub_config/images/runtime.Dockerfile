# The step runtime image: what cellpipe's Kubernetes Jobs and Kubeflow Pipelines steps run in. cellpipe with
# its pinned scientific stack (numpy, pandas, pyarrow, scikit-learn, MLflow, KFP), non-root, and nothing
# downloaded when a step runs (PIP_NO_INDEX: a step that tries to pip install fails at once).
#
# It is cellpipe's default image (jupyter_ext.targets.kfp.compile.DEFAULT_IMAGE): build it under that name,
# from the repository root, and push it where your cluster pulls from:
#   docker build -f hub_config/images/runtime.Dockerfile -t cellpipe/runtime:0.1.0 .
# or choose another name with --image / $CELLPIPE_IMAGE / the notebook's docker_image (docs/hub.md).
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.ref.name="cellpipe/runtime:0.1.0" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.description="cellpipe step runtime for Kubernetes Jobs and Kubeflow Pipelines"

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN useradd --uid 1000 --gid 100 --create-home --shell /bin/bash jovyan

WORKDIR /opt/cellpipe
COPY pyproject.toml README.md constraints.txt ./
COPY jupyter_ext ./jupyter_ext
COPY jupyter-config ./jupyter-config
COPY labextension ./labextension
RUN pip install -c constraints.txt . \
    && python -c "import jupyter_ext.runtime.pod, ipykernel, sklearn, pandas, pyarrow"

ENV PIP_NO_INDEX=1 \
    HOME=/home/jovyan \
    MPLCONFIGDIR=/tmp/matplotlib
USER 1000:100
WORKDIR /home/jovyan
