package derprelay

import (
	"testing"

	"tailscale.com/tailcfg"
)

// Auto (-1) picks the lowest region ID that has a node to relay through; 0 is off whatever the
// map holds; a positive value is taken as it is.
func TestChooseRegionAutoPicksTheLowestRegionWithNodesAndZeroIsOff(t *testing.T) {
	node := func(region int, stunOnly bool) *tailcfg.DERPNode {
		return &tailcfg.DERPNode{RegionID: region, HostName: "derp.example", STUNOnly: stunOnly}
	}
	dm := &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{
		1:   {RegionID: 1},                                             // no nodes
		2:   {RegionID: 2, Nodes: []*tailcfg.DERPNode{node(2, true)}},  // STUN only
		9:   {RegionID: 9, Nodes: []*tailcfg.DERPNode{node(9, false)}}, // usable
		5:   {RegionID: 5, Nodes: []*tailcfg.DERPNode{node(5, true), node(5, false)}},
		900: {RegionID: 900, Nodes: []*tailcfg.DERPNode{node(900, false)}},
		4:   nil,
	}}
	tests := []struct {
		name string
		want int
		dm   *tailcfg.DERPMap
		got  int
	}{
		{"auto picks the lowest usable", RegionAuto, dm, 5},
		{"auto without a map", RegionAuto, nil, 0},
		{"auto with no usable region", RegionAuto, &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{1: {RegionID: 1}}}, 0},
		{"off", RegionOff, dm, 0},
		{"off without a map", RegionOff, nil, 0},
		{"fixed", 900, dm, 900},
		{"fixed, not in the map", 77, dm, 77},
	}
	for _, tt := range tests {
		if got := ChooseRegion(tt.want, tt.dm); got != tt.got {
			t.Errorf("%s: ChooseRegion(%d) = %d, want %d", tt.name, tt.want, got, tt.got)
		}
	}
}
