// CoreDNS for the real test node (test/k8s/real-node.ts), built by test/k8s/build-bins.sh from
// the pinned github.com/coredns/coredns module. The same main as CoreDNS's own coredns.go, with
// the plugins the node's Corefile uses (and log, cache, metrics, reload to debug with) instead
// of all of core/plugin, CoreDNS's documented way to choose plugins at build time: that list pulls in the
// cloud DNS providers' SDKs (AWS, Azure, Google), tracing and more, which would triple the
// build for nothing a test cluster's DNS does. The directive order stays CoreDNS's own
// (core/dnsserver's zdirectives.go).
package main

import (
	_ "github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/template"
)

func main() { coremain.Run() }
