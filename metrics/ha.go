package metrics

// HARoles are the values of the role label of nfqfw_ha_role.
var HARoles = []string{"primary", "backup", "standalone"}

var (
	haRole = gauge("ha_role",
		"The gateway's role in a high-availability pair as its keepalived notify hook last set it (nfqfw ha): 1 for the current role, 0 for the others; standalone when never told.",
		"role")
	haTransitions = counter("ha_transitions_total",
		"Changes of the role to primary (promotion) or backup (demotion).", "to")
	haErrors = counter("ha_errors_total",
		"Failures at a role change, by operation: read_flows (the kernel's flow table could not be read to adopt its flows), follow_new (the conntrack event socket could not join or leave the new-flow group a backup adopts from).",
		"op")
)

// newHACollector exports the gateway's role in a pair.
func newHACollector(src HASource) scrapeCollector {
	return scrapeCollector{
		fams: []family{haRole, haTransitions, haErrors},
		read: func(s *scrape) error {
			st := src.HAStats()
			for _, r := range HARoles {
				v := 0.0
				if r == st.Role {
					v = 1
				}
				s.add(haRole, v, r)
			}
			s.add(haTransitions, float64(st.ToPrimary), "primary")
			s.add(haTransitions, float64(st.ToBackup), "backup")
			s.add(haErrors, float64(st.ReadErrors), "read_flows")
			s.add(haErrors, float64(st.FollowErrors), "follow_new")
			return nil
		},
	}
}
