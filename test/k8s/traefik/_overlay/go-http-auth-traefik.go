// Added to a copy of github.com/abbot/go-http-auth v0.4.0 in the test build of Traefik
// (test/k8s/build-traefik.sh; Go ignores this folder otherwise).
//
// Traefik builds against its fork of go-http-auth (github.com/containous/go-http-auth), which
// the Go module proxy here refuses at every version. Traefik's basic and digest auth middlewares
// use two things the fork adds to the upstream release: CheckSecret and
// DigestAuth.RequireAuthStale. These are written here against the upstream package's own
// comparison functions and challenge. The tests' Ingresses use no auth middleware.
package auth

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// CheckSecret reports whether password matches secret, an htpasswd entry (MD5-crypt by default,
// {SHA}, bcrypt), compared as BasicAuth.CheckAuth compares them.
func CheckSecret(password, secret string) bool {
	compare := compareFuncs[0].compare
	for _, cmp := range compareFuncs[1:] {
		if strings.HasPrefix(secret, cmp.prefix) {
			compare = cmp.compare
			break
		}
	}
	return compare([]byte(secret), []byte(password)) == nil
}

// RequireAuthStale is RequireAuth with stale=true in the challenge (RFC 7616): the client's
// nonce was out of date, so it may retry with the same credentials and the new nonce.
func (a *DigestAuth) RequireAuthStale(w http.ResponseWriter, r *http.Request) {
	a.mutex.Lock()
	defer a.mutex.Unlock()
	if len(a.clients) > a.ClientCacheSize+a.ClientCacheTolerance {
		a.Purge(a.ClientCacheTolerance * 2)
	}
	nonce := RandomKey()
	a.clients[nonce] = &digest_client{nc: 0, last_seen: time.Now().UnixNano()}
	w.Header().Set(contentType, a.Headers.V().UnauthContentType)
	w.Header().Set(a.Headers.V().Authenticate,
		fmt.Sprintf(`Digest realm="%s", nonce="%s", opaque="%s", algorithm="MD5", qop="auth", stale=true`,
			a.Realm, nonce, a.Opaque))
	w.WriteHeader(a.Headers.V().UnauthCode)
	_, _ = w.Write([]byte(a.Headers.V().UnauthResponse))
}
