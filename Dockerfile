# symlinkd container image.
#   podman build -t symlinkd:0.1.0 .            (official python:3.11-slim base)
#   .ci/image.sh                                (CI: a locally made base, no registry needed)
ARG BASE=python:3.11-slim

# ---- build: install the package into a venv; pip, wheels and caches stay in this stage ----
FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY symlinkd ./symlinkd
# A venv under /opt keeps the final COPY to one directory. pip/setuptools are removed from it:
# nothing installs at run time, and a smaller venv is less to patch.
RUN python -m venv /opt/symlinkd \
    && /opt/symlinkd/bin/pip install --no-cache-dir . \
    && /opt/symlinkd/bin/python -m compileall -q /opt/symlinkd/lib \
    && /opt/symlinkd/bin/pip uninstall -y -q pip setuptools

# ---- run ----
FROM ${BASE}
ARG UID=10001
LABEL org.opencontainers.image.title="symlinkd" \
      org.opencontainers.image.description="Keeps the symlink farm of a debrid media stack healthy" \
      org.opencontainers.image.licenses="MIT"
# tini as PID 1: forwards SIGTERM/SIGINT to symlinkd (the kernel drops signals without a
# handler for PID 1) and reaps zombies, whatever subcommand runs (run, scan, demo, ...).
# The user is written into /etc/passwd directly: minimal Debian bases lack useradd.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && echo "symlinkd:x:${UID}:${UID}:symlinkd:/nonexistent:/usr/sbin/nologin" >> /etc/passwd \
    && echo "symlinkd:x:${UID}:" >> /etc/group
COPY --from=build /opt/symlinkd /opt/symlinkd
ENV PATH=/opt/symlinkd/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER ${UID}:${UID}
WORKDIR /tmp
EXPOSE 9090
ENTRYPOINT ["/usr/bin/tini", "--", "symlinkd"]
CMD ["run"]
