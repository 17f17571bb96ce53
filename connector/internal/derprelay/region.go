// Package derprelay is the gateway's DERP fallback: the connector keeps a connection to the
// node's home DERP region with exitgw's node key and relays what peers send there to exitgw's
// WireGuard port over UDP, one local socket (one source port) per peer, and what exitgw
// answers on each socket back to that peer through DERP.
package derprelay

import (
	"slices"

	"tailscale.com/tailcfg"
)

const (
	// RegionAuto picks the lowest region ID of the netmap's DERPMap that has a node.
	RegionAuto = -1
	// RegionOff advertises no home DERP region and keeps no DERP connection.
	RegionOff = 0
)

// ChooseRegion is the home region for the --derp-region flag value want: RegionOff (0) is
// off; a positive value is that region, whatever the DERPMap holds; RegionAuto (-1, or any
// negative value) is the lowest region ID in dm with at least one node that relays (not only
// STUN), or 0 while there is none.
func ChooseRegion(want int, dm *tailcfg.DERPMap) int {
	if want >= 0 {
		return want
	}
	if dm == nil {
		return 0
	}
	ids := make([]int, 0, len(dm.Regions))
	for id, r := range dm.Regions {
		if id > 0 && usable(r) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return 0
	}
	return slices.Min(ids)
}

// usable reports whether r has a node a DERP client can connect to.
func usable(r *tailcfg.DERPRegion) bool {
	if r == nil {
		return false
	}
	for _, n := range r.Nodes {
		if n != nil && !n.STUNOnly {
			return true
		}
	}
	return false
}
