# capisync in a container: a static binary on a distroless base, running as
# a non-root user, its store on a volume.
#   docker build --build-arg VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse HEAD) -t capisync .
#   docker run -v capisync-state:/var/lib/capisync -v $PWD/config.yaml:/etc/capisync/config.yaml:ro \
#     -e META_ACCESS_TOKEN -p 127.0.0.1:9464:9464 capisync
# In the config: state: {path: /var/lib/capisync/capisync.db} and, to reach
# the HTTP port from the host, http: {listen: "0.0.0.0:9464", token: ${CAPISYNC_HTTP_TOKEN}}.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
      -o /out/capisync ./cmd/capisync

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/capisync /usr/local/bin/capisync
USER nonroot:nonroot
VOLUME ["/var/lib/capisync"]
WORKDIR /var/lib/capisync
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/capisync"]
CMD ["run", "--config", "/etc/capisync/config.yaml"]
