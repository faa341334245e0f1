# syntax=docker/dockerfile:1
#
# The orderwatch worker image (used by docker-compose.yml).
#
#   docker build -t orderwatch .
#   docker run --rm orderwatch worker --broker kafka://HOST:9092 --store postgresql+psycopg2://...
#
# Two stages: durable-rules ships only an sdist, so it is compiled in a stage
# that has build-essential; the runtime stage gets the finished wheels and no
# compiler.

ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS build

# Drivers the image needs beyond the project's own dependencies: psycopg2 for
# the PostgreSQL alert store (and PostgreSQL ERP sources), PyMySQL for MariaDB
# sources. Add more with --build-arg EXTRA_PACKAGES="...".
ARG EXTRA_PACKAGES="psycopg2-binary pymysql"

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY orderwatch ./orderwatch
COPY engine ./engine
COPY connectors ./connectors
COPY alerts ./alerts
RUN pip wheel --no-cache-dir --wheel-dir /wheels . ${EXTRA_PACKAGES}


FROM python:${PYTHON_VERSION}-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 orderwatch \
    && useradd --system --uid 10001 --gid orderwatch \
        --home-dir /var/lib/orderwatch --create-home --shell /usr/sbin/nologin orderwatch

COPY --from=build /wheels /tmp/wheels
RUN pip install --no-index --find-links=/tmp/wheels /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels

# The shipped rule packs are YAML, not a Python package: they live beside the
# install and the default command points --rules at them.
COPY rules /opt/orderwatch/rules

# Faust keeps its table state under the working directory; it must be writable.
WORKDIR /var/lib/orderwatch
USER orderwatch

EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6066/metrics', timeout=4)"]

ENTRYPOINT ["orderwatch"]
# Broker and store come from ORDERWATCH_BROKER / ORDERWATCH_STORE or the flags.
CMD ["worker", "--web-host", "0.0.0.0", "--web-port", "6066", "--rules", "/opt/orderwatch/rules"]
