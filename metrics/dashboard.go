package metrics

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
)

// DashboardPath is the Grafana dashboard's path relative to the module
// root.
const DashboardPath = "metrics/dashboard/nfqfw.json"

// grafanaDashboard is the part of a Grafana dashboard model the tests and
// DashboardQueries read.
type grafanaDashboard struct {
	SchemaVersion int             `json:"schemaVersion"`
	Inputs        []grafanaInput  `json:"__inputs"`
	Panels        []grafanaPanel  `json:"panels"`
	Templating    grafanaTemplate `json:"templating"`
}

type grafanaInput struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	PluginID string `json:"pluginId"`
}

type grafanaTemplate struct {
	List []grafanaVariable `json:"list"`
}

type grafanaVariable struct {
	Name       string             `json:"name"`
	Type       string             `json:"type"`
	Query      json.RawMessage    `json:"query"`
	Datasource *grafanaDatasource `json:"datasource"`
	AllValue   string             `json:"allValue"`
}

type grafanaDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaPanel struct {
	ID         int                `json:"id"`
	Type       string             `json:"type"`
	Title      string             `json:"title"`
	Datasource *grafanaDatasource `json:"datasource"`
	Targets    []grafanaTarget    `json:"targets"`
	Panels     []grafanaPanel     `json:"panels"` // a collapsed row's panels
}

type grafanaTarget struct {
	RefID      string             `json:"refId"`
	Expr       string             `json:"expr"`
	Datasource *grafanaDatasource `json:"datasource"`
}

// loadDashboard reads a Grafana dashboard JSON file.
func loadDashboard(path string) (*grafanaDashboard, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("metrics: read dashboard: %w", err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("metrics: parse dashboard %s: %w: %v", path, ErrDashboard, err)
	}
	if d.SchemaVersion == 0 || len(d.Panels) == 0 {
		return nil, fmt.Errorf("metrics: parse dashboard %s: %w: no schemaVersion or no panels", path, ErrDashboard)
	}
	return &d, nil
}

// walkPanels calls fn for every panel, rows' nested panels included, in
// order.
func walkPanels(ps []grafanaPanel, fn func(*grafanaPanel)) {
	for i := range ps {
		fn(&ps[i])
		walkPanels(ps[i].Panels, fn)
	}
}

// grafanaVar matches a Grafana variable reference: $name or ${name} or
// ${name:format}.
var grafanaVar = regexp.MustCompile(`\$(?:\{(\w+)(?::\w+)?\}|(\w+))`)

// expandQuery replaces Grafana's variables in expr so that Prometheus can
// evaluate it: the interval variables become fixed durations, and every
// template variable (all of them multi-value, used in regex matchers) its
// "All" value ".*".
func expandQuery(expr string) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(ref string) string {
		m := grafanaVar.FindStringSubmatch(ref)
		name := m[1] + m[2]
		switch name {
		case "__rate_interval", "__interval":
			return "1m"
		case "__range":
			return "1h"
		}
		return ".*"
	})
}

// DashboardQueries returns the PromQL of every panel target of the Grafana
// dashboard at path (DashboardPath from the module root), in panel order,
// ready for Prometheus to evaluate: $__rate_interval and $__interval are
// replaced by 1m, $__range by 1h, and each template variable ($instance,
// $queue) by its "All" value ".*". An end-to-end test evaluates them against
// a Prometheus scraping the daemon.
func DashboardQueries(path string) ([]string, error) {
	d, err := loadDashboard(path)
	if err != nil {
		return nil, err
	}
	var qs []string
	walkPanels(d.Panels, func(p *grafanaPanel) {
		for _, t := range p.Targets {
			if t.Expr != "" {
				qs = append(qs, expandQuery(t.Expr))
			}
		}
	})
	if len(qs) == 0 {
		return nil, fmt.Errorf("metrics: dashboard %s: %w: no queries", path, ErrDashboard)
	}
	return qs, nil
}
