# imgate's image: `imgate run` (the all-in-one) by default; docker-compose.yml runs its other
# commands (api, bridge, worker, migrate, cert dev) from the same image.
#
# It runs as the unprivileged user imgate, uid 10001 and gid 10001, never as root: give a
# container nothing of root's (no --user root, no privileged ports: imgate's are all above 1024).
# The data directory /data (IMGATE_DATA_DIR: the all-in-one's files, signing key, embedded search
# index) and /certs (where the compose file's `certs` one-shot writes the development CA) are made
# here, owned by imgate, so that a new named volume mounted on either starts out writable by it:
# Docker copies the directory's owner and mode into an empty named volume. A bind mount, or a
# volume an older image made as root, is handed over once:
#   docker run --rm --user root -v VOLUME:/data --entrypoint chown imgate:local -R 10001:10001 /data

# The wheel: imgate and its files (the web chat page under imgate/webchat, the console under imgate/console).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY broker broker
COPY bridge bridge
COPY services services
COPY config config
COPY imgate imgate
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
# Installed from the wheel alone (no source tree beside it), and checked from outside any source
# tree: the image serves the chat page and the console only if the wheel carries their files.
RUN pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels \
    && cd / && python -c "import sys, imgate.web as w, imgate.admin as a; sys.exit(0 if (w.PAGE_DIR / 'index.html').is_file() \
        and (a.CONSOLE_DIR / 'console.js').is_file() \
        else 'imgate/webchat or imgate/console is not in the wheel: see the package data in pyproject.toml')"
RUN groupadd --system --gid 10001 imgate \
    && useradd --system --no-log-init --uid 10001 --gid 10001 --home-dir /home/imgate --create-home \
        --shell /usr/sbin/nologin imgate \
    && install -d -o 10001 -g 10001 -m 0700 /data \
    && install -d -o 10001 -g 10001 -m 0755 /certs
WORKDIR /home/imgate
# Every listener on all of the container's addresses (the admin API stays on its loopback unless
# admin.host says otherwise): which are reachable is what the ports published say.
ENV IMGATE_DATA_DIR=/data IMGATE_MQTT__HOST=0.0.0.0 IMGATE_WEB__HOST=0.0.0.0
VOLUME /data
USER 10001:10001
# MQTT, WebSocket, MQTT over TLS, secure WebSocket, the web chat page, the admin API.
EXPOSE 1883 8083 8883 8884 8090 8080
ENTRYPOINT ["imgate"]
CMD ["run"]
