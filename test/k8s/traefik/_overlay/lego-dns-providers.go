// Replaces lego's providers/dns/zz_gen_dns_providers.go in the test build of Traefik
// (test/k8s/build-traefik.sh passes it to `go build -overlay`; Go ignores this folder otherwise).
//
// That generated file imports every DNS provider lego has, for the DNS-01 challenge of Traefik's
// ACME resolvers, and the Go module proxy here refuses the SDK modules of 13 of them (alidns,
// aliesa, azion, dnsimple, edgedns, edgeone, huaweicloud, oraclecloud, regfish, sakuracloud,
// tencentcloud, ucloud, yandexcloud): with it, Traefik does not build. The test binary routes
// Ingresses on plain HTTP and never asks for a certificate, so it has no DNS provider at all;
// the rest of Traefik is built unchanged. A certificate resolver with a dnsChallenge fails at
// start with the error below.
package dns

import (
	"fmt"

	"github.com/go-acme/lego/v5/challenge"
)

// NewDNSChallengeProviderByName has the signature of lego's and knows no provider.
func NewDNSChallengeProviderByName(name string) (challenge.Provider, error) {
	return nil, fmt.Errorf("DNS challenge provider %q: this Traefik was built for tests without lego's DNS providers (test/k8s/build-traefik.sh)", name)
}
