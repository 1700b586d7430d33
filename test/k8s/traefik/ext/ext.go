// Package ext is the extension point that github.com/traefik/traefik/v3/pkg/config/dynamic embeds
// in its HTTP configuration and routers (inline, so it adds no field). Open-source Traefik
// extends nothing through it: the types are empty, as in Traefik's own tree.
package ext

// HTTP is embedded in dynamic.HTTP.
type HTTP struct{}

// Router is embedded in dynamic.Router.
type Router struct{}

// RouterIng is the ingress provider annotations' counterpart of Router.
type RouterIng struct{}

// ToRouter converts RouterIng to a Router.
func (RouterIng) ToRouter() Router { return Router{} }
