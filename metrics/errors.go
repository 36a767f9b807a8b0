package metrics

import "errors"

// ErrDisabled is returned by Serve when the listen address is empty: the
// exporter is turned off.
var ErrDisabled = errors.New("metrics exporter disabled (empty listen address)")

// ErrDashboard is returned by DashboardQueries for a file that is not a
// Grafana dashboard with panel targets.
var ErrDashboard = errors.New("not a grafana dashboard")
