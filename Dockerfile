FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY broker broker
COPY bridge bridge
COPY services services
COPY config config
COPY imgate imgate
RUN pip install --no-cache-dir .
ENV IMGATE_DATA_DIR=/data IMGATE_MQTT__HOST=0.0.0.0
VOLUME /data
EXPOSE 1883 8883 8884
ENTRYPOINT ["imgate"]
CMD ["run"]
