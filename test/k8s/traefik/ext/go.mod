// github.com/traefik/traefik/dynamic/ext for the Traefik build (see ../go.mod): Traefik's repository
// keeps this module in pkg/config/dynamic/ext and replaces it with that path, but a nested module
// is not part of the github.com/traefik/traefik/v3 module zip, and the Go module proxy serves it
// under no version. Upstream it is an extension point made of empty types; this is the same.
module github.com/traefik/traefik/dynamic/ext

go 1.24.0
