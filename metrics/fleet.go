package metrics

import "github.com/prometheus/client_golang/prometheus"

var (
	fleetPublished = counter("fleet_decisions_published_total",
		"Decisions of this gateway acknowledged by the fleet stream, by kind.", "kind")
	fleetReceived = counter("fleet_decisions_received_total",
		"Decisions of other gateways received from the fleet stream and applied, by kind.", "kind")
	fleetRefused = counter("fleet_decisions_refused_total",
		"Decisions of other gateways refused on receipt because their scope covers an allowlisted or management source, by kind.", "kind")
	fleetDropped = counter("fleet_messages_dropped_total",
		"Fleet messages dropped, by reason: malformed, oversized, spoofed (subject and origin differ), expired (on arrival), outbox_full (a decision of this gateway dropped from a full outbox), unshared (an allow or a recent-list entry of a kind or list this gateway does not share).",
		"reason")
	fleetUp      = gauge("fleet_link_up", "1 while the fleet link is connected with its stream set up, 0 while this gateway decides alone.")
	fleetBacklog = gauge("fleet_outbox_backlog", "Decisions of this gateway waiting to be published.")
	fleetCursor  = gauge("fleet_stream_sequence", "The last fleet stream sequence this gateway applied.")
	fleetConns   = counter("fleet_connects_total", "Connections and reconnections of the fleet link to a NATS server.")
	fleetLag     = newDesc("fleet_propagation_seconds", "Delay from a remote decision's issue on its gateway to its arrival here.")
)

// fleetCollector exports the fleet link.
type fleetCollector struct{ src FleetSource }

func newFleetCollector(src FleetSource) fleetCollector { return fleetCollector{src} }

func (fleetCollector) describe(ch chan<- *prometheus.Desc) {
	describe(ch, fleetPublished, fleetReceived, fleetRefused, fleetDropped, fleetUp, fleetBacklog, fleetCursor, fleetConns)
	ch <- fleetLag
}

func (c fleetCollector) update(ch chan<- prometheus.Metric) error {
	st := c.src.FleetStats()
	s := newScrape()
	for _, k := range st.Kinds {
		s.add(fleetPublished, float64(k.Published), k.Kind)
		s.add(fleetReceived, float64(k.Received), k.Kind)
		s.add(fleetRefused, float64(k.Refused), k.Kind)
	}
	for _, r := range []struct {
		reason string
		n      uint64
	}{{"malformed", st.Malformed}, {"oversized", st.Oversized}, {"spoofed", st.Spoofed}, {"expired", st.Expired}, {"outbox_full", st.OutboxFull}, {"unshared", st.Unshared}} {
		s.add(fleetDropped, float64(r.n), r.reason)
	}
	up := 0.0
	if st.Up {
		up = 1
	}
	s.add(fleetUp, up)
	s.add(fleetBacklog, float64(st.Backlog))
	s.add(fleetCursor, float64(st.Cursor))
	s.add(fleetConns, float64(st.Connects))
	s.emit(ch)
	buckets := make(map[float64]uint64, len(st.LagBounds))
	for i, b := range st.LagBounds {
		if i < len(st.LagBuckets) {
			buckets[b] = st.LagBuckets[i]
		}
	}
	h, err := prometheus.NewConstHistogram(fleetLag, st.LagCount, st.LagSum, buckets)
	if err != nil {
		return err
	}
	ch <- h
	return nil
}
