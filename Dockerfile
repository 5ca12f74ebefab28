# sessiond as a static binary in a distroless image: no shell, no package
# manager, CA certificates included (for rediss:// and https upstreams),
# running as a non-root user.
#
#   docker build -t sessiond .
#   docker run --rm -p 127.0.0.1:8080:8080 sessiond
#
# docker-compose.yml runs two instances of it over one Redis.

# Build stage: the Go version of go.mod.
FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so the download layer is reused while only code changes.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO_ENABLED=0: a static binary that needs no libc in the final image.
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/sessiond ./cmd/sessiond

# Final stage: distroless static (CA certificates, tzdata, /etc/passwd with
# the nonroot user, nothing else).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sessiond /usr/local/bin/sessiond
USER nonroot:nonroot
# Inside a container the API must listen on every interface; publish the
# port on the host's loopback (see docker-compose.yml) or behind a load
# balancer, never openly without API keys.
ENV SESSIOND_LISTEN=:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/sessiond"]
