package derprelay

import (
	"fmt"
	"io"
)

// WriteMetrics writes the relay's series in Prometheus text format. Nil-safe (the relay off,
// --derp-region 0: nothing).
func (r *Relay) WriteMetrics(w io.Writer) {
	if r == nil {
		return
	}
	b2i := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
	gauge := func(name, help string, v int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
	}
	gauge("exitgw_connector_derp_connected", "1 while the connector's connection to the home DERP region works, else 0.", int64(b2i(r.Connected())))
	gauge("exitgw_connector_derp_home_region", "The DERP region the connector advertises as the gateway's home (0 before the first netmap).", int64(r.HomeRegion()))
	dirs := [2]string{fromDERP: "from_derp", toDERP: "to_derp"}
	fmt.Fprintf(w, "# HELP exitgw_connector_derp_packets_total Packets relayed: from_derp, from peers through DERP written to exitgw; to_derp, from exitgw sent to peers through DERP.\n")
	fmt.Fprintf(w, "# TYPE exitgw_connector_derp_packets_total counter\n")
	for d, name := range dirs {
		fmt.Fprintf(w, "exitgw_connector_derp_packets_total{direction=%q} %d\n", name, r.packets[d].Load())
	}
	fmt.Fprintf(w, "# HELP exitgw_connector_derp_bytes_total Payload bytes of the packets in exitgw_connector_derp_packets_total.\n")
	fmt.Fprintf(w, "# TYPE exitgw_connector_derp_bytes_total counter\n")
	for d, name := range dirs {
		fmt.Fprintf(w, "exitgw_connector_derp_bytes_total{direction=%q} %d\n", name, r.bytes[d].Load())
	}
	fmt.Fprintf(w, "# HELP exitgw_connector_derp_drops_total Packets not relayed, by reason.\n")
	fmt.Fprintf(w, "# TYPE exitgw_connector_derp_drops_total counter\n")
	for d := range dropCount {
		fmt.Fprintf(w, "exitgw_connector_derp_drops_total{reason=%q} %d\n", d.String(), r.drops[d].Load())
	}
	gauge("exitgw_connector_derp_relay_peers", "Peers with an open relay socket to exitgw.", r.openConns.Load())
}
