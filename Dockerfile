# daytwo's daemon as a container image: a static binary (CGO_ENABLED=0;
# SQLite is pure Go) on a small base, run as a non-root user.
#
#   docker build -t daytwo --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg COMMIT=$(git rev-parse HEAD) --build-arg DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) .
#   docker run -d --name daytwo -v /etc/daytwo:/etc/daytwo:ro -v daytwo-state:/var/lib/daytwo \
#     -e DAYTWO_SN_PASSWORD -p 9464:9464 daytwo
#   docker run --rm -v daytwo-state:/var/lib/daytwo -v /etc/daytwo:/etc/daytwo:ro daytwo status
#   docker kill -s HUP daytwo     # reload the configuration

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.date=${DATE}" -o /out/daytwo ./cmd/daytwo

FROM alpine:3.22
# Deploy steps run programs through sh; ssh deploys need the ssh client.
RUN apk add --no-cache ca-certificates openssh-client \
 && addgroup -S -g 10001 daytwo && adduser -S -D -H -u 10001 -G daytwo daytwo \
 && install -d -o daytwo -g daytwo -m 0750 /var/lib/daytwo
COPY --from=build /out/daytwo /usr/local/bin/daytwo
ENV DAYTWO_CONFIG=/etc/daytwo/daytwo.yaml \
    DAYTWO_DB=/var/lib/daytwo/daytwo.db \
    DAYTWO_SYNC_LISTEN=0.0.0.0:9464
VOLUME ["/var/lib/daytwo"]
EXPOSE 9464
USER 10001:10001
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/daytwo"]
CMD ["sync", "--watch"]
