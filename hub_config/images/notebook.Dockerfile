# The users' server image for JupyterHub (KubeSpawner, z2jh): JupyterLab, jupyterhub-singleuser and cellpipe
# (its server extension and JupyterLab extension), running as the non-root user jovyan (1000:100).
#
# Build from the repository root (the default name the hub config uses: hub_config/cellpipe_hub.py):
#   docker build -f hub_config/images/notebook.Dockerfile -t cellpipe/notebook:0.1.0 .
# Every Python package comes from constraints.txt: the image has exactly the versions the tests ran with.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.ref.name="cellpipe/notebook:0.1.0" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.description="JupyterLab + cellpipe for JupyterHub"

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN useradd --uid 1000 --gid 100 --create-home --shell /bin/bash jovyan

WORKDIR /opt/cellpipe
COPY pyproject.toml README.md constraints.txt ./
COPY jupyter_ext ./jupyter_ext
COPY jupyter-config ./jupyter-config
COPY labextension ./labextension
# The hub extra: JupyterLab and JupyterHub (for jupyterhub-singleuser), pinned like everything else.
RUN pip install -c constraints.txt ".[hub]" \
    && jupyter server extension list 2>&1 | grep -q "jupyter_ext.server.*enabled"

COPY --chown=1000:100 examples /home/jovyan/examples

# Nothing is installed once the image runs: a user's pipeline steps use what is here.
ENV PIP_NO_INDEX=1 \
    HOME=/home/jovyan
USER 1000:100
WORKDIR /home/jovyan
EXPOSE 8888
CMD ["jupyterhub-singleuser"]
