package metrics

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
)

const dashboardFile = "dashboard/nfqfw.json"

var wantDatasource = grafanaDatasource{Type: "prometheus", UID: "${DS_PROMETHEUS}"}

func TestDashboardIsImportableWithDatasourceInput(t *testing.T) {
	d, err := loadDashboard(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion = %d, want 39 or later", d.SchemaVersion)
	}
	wantInputs := []grafanaInput{{Name: "DS_PROMETHEUS", Type: "datasource", PluginID: "prometheus"}}
	if diff := cmp.Diff(wantInputs, d.Inputs); diff != "" {
		t.Errorf("__inputs (-want +got):\n%s", diff)
	}
	// Provisioned from file (no import), ${DS_PROMETHEUS} is this variable.
	var dsVar *grafanaVariable
	for i, v := range d.Templating.List {
		if v.Name == "DS_PROMETHEUS" {
			dsVar = &d.Templating.List[i]
		} else if v.Datasource == nil || *v.Datasource != wantDatasource {
			t.Errorf("variable %s: datasource %+v, want %+v", v.Name, v.Datasource, wantDatasource)
		}
	}
	if dsVar == nil || dsVar.Type != "datasource" || string(dsVar.Query) != `"prometheus"` {
		t.Errorf("no datasource variable DS_PROMETHEUS of plugin prometheus: %+v", dsVar)
	}
}

func TestDashboardPanelsUseTheDatasourceVariable(t *testing.T) {
	d, err := loadDashboard(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[int]string{}
	walkPanels(d.Panels, func(p *grafanaPanel) {
		if prev, ok := ids[p.ID]; ok {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.Type == "row" {
			return
		}
		if p.Datasource == nil || *p.Datasource != wantDatasource {
			t.Errorf("panel %q: datasource %+v, want %+v", p.Title, p.Datasource, wantDatasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no targets", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || *tg.Datasource != wantDatasource {
				t.Errorf("panel %q target %s: datasource %+v, want %+v", p.Title, tg.RefID, tg.Datasource, wantDatasource)
			}
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q target %s: empty expr", p.Title, tg.RefID)
			}
		}
	})
}

// templateVarOutsideRegex finds a template variable that is not the whole
// value of a regex matcher, where expandQuery's ".*" would not be valid.
var templateVarOutsideRegex = regexp.MustCompile(`\$\{?[a-zA-Z]\w*`)

func TestDashboardTemplateVariablesOnlyInRegexMatchers(t *testing.T) {
	d, err := loadDashboard(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	inRegex := regexp.MustCompile(`=~"\$\{?\w+\}?"`)
	walkPanels(d.Panels, func(p *grafanaPanel) {
		for _, tg := range p.Targets {
			rest := inRegex.ReplaceAllString(tg.Expr, "")
			if v := templateVarOutsideRegex.FindString(rest); v != "" {
				t.Errorf("panel %q target %s: %s outside a =~ matcher: %s", p.Title, tg.RefID, v, tg.Expr)
			}
		}
	})
}

// Pieces of PromQL that are not metric names, removed before the names are
// picked out.
var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promOffset   = regexp.MustCompile(`\boffset\s+-?\w+`)
	promNumber   = regexp.MustCompile(`(^|[^\w:])(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promKeywords = []string{"by", "without", "on", "ignoring", "group_left", "group_right",
		"bool", "and", "or", "unless", "offset", "inf", "nan", "Inf", "NaN"}
)

// metricNames returns the metric names a PromQL expression selects.
func metricNames(expr string) []string {
	s := promString.ReplaceAllString(expr, `""`)
	s = promMatchers.ReplaceAllString(s, " ")
	s = promRange.ReplaceAllString(s, " ")
	s = promGrouping.ReplaceAllString(s, " ")
	s = promOffset.ReplaceAllString(s, " ")
	s = promNumber.ReplaceAllString(s, "${1} ")
	var names []string
	for _, loc := range promIdent.FindAllStringIndex(s, -1) {
		id := s[loc[0]:loc[1]]
		if slices.Contains(promKeywords, id) {
			continue
		}
		if strings.HasPrefix(strings.TrimLeft(s[loc[1]:], " \t\n"), "(") {
			continue // a function call
		}
		if !slices.Contains(names, id) {
			names = append(names, id)
		}
	}
	return names
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		name string
		expr string
		want []string
	}{
		{"bare", `nfqfw_flows`, []string{"nfqfw_flows"}},
		{"rate with grouping and matchers",
			`sum by (rule, action) (rate(nfqfw_packets_total{instance=~"$instance",rule!="x{y}"}[$__rate_interval]))`,
			[]string{"nfqfw_packets_total"}},
		{"quantile", `histogram_quantile(0.99, sum by (le) (rate(nfqfw_verdict_latency_seconds_bucket[1m])))`,
			[]string{"nfqfw_verdict_latency_seconds_bucket"}},
		{"binary with vector and comparison", `count(nfqfw_scrape_collector_success == 0) or vector(0)`,
			[]string{"nfqfw_scrape_collector_success"}},
		{"arithmetic on two metrics", `time() - max(a_seconds) / b_total offset 5m`, []string{"a_seconds", "b_total"}},
		{"exponent number", `x_total > 1e-5`, []string{"x_total"}},
		{"join", `a * on (queue) group_left (kind) b`, []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, metricNames(tt.expr)); diff != "" {
				t.Errorf("metricNames(%q) (-want +got):\n%s", tt.expr, diff)
			}
		})
	}
}

// exposedNames is every series name fullMetrics exposes: family names, and
// for histograms the _bucket, _sum and _count series.
func exposedNames(t *testing.T) (names, nfqfwFamilies []string) {
	t.Helper()
	mfs, err := fullMetrics().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		n := mf.GetName()
		names = append(names, n)
		if mf.GetType() == dto.MetricType_HISTOGRAM || mf.GetType() == dto.MetricType_SUMMARY {
			names = append(names, n+"_bucket", n+"_sum", n+"_count")
		}
		if strings.HasPrefix(n, namespace+"_") {
			nfqfwFamilies = append(nfqfwFamilies, n)
		}
	}
	return names, nfqfwFamilies
}

func TestDashboardQueriesUseExposedMetrics(t *testing.T) {
	exposed, families := exposedNames(t)
	qs, err := DashboardQueries(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, q := range qs {
		names := metricNames(q)
		if len(names) == 0 {
			t.Errorf("query selects no metric: %s", q)
		}
		for _, n := range names {
			if !slices.Contains(exposed, n) {
				t.Errorf("query uses %s, which the exporter does not expose: %s", n, q)
			}
			used[strings.TrimSuffix(n, "_bucket")] = true
		}
	}
	// Every nfqfw family is on the dashboard.
	for _, f := range families {
		if !used[f] {
			t.Errorf("family %s is on no dashboard panel", f)
		}
	}
}

func TestDashboardQueriesExpandGrafanaVariables(t *testing.T) {
	qs, err := DashboardQueries(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if strings.Contains(q, "$") {
			t.Errorf("unexpanded variable in %s", q)
		}
	}
	const in = `sum(rate(x_total{instance=~"$instance",queue=~"${queue}"}[$__rate_interval])) / $__range`
	const want = `sum(rate(x_total{instance=~".*",queue=~".*"}[1m])) / 1h`
	if got := expandQuery(in); got != want {
		t.Errorf("expandQuery(%q) = %q, want %q", in, got, want)
	}
}

func TestDashboardQueriesRejectsNonDashboards(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		wantErr error
	}{
		{"not json", "panels: []", ErrDashboard},
		{"no panels", `{"schemaVersion": 39, "panels": []}`, ErrDashboard},
		{"panels without queries", `{"schemaVersion": 39, "panels": [{"type": "text"}]}`, ErrDashboard},
		{"missing file", "", os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".json")
			if tt.content != "" {
				if err := os.WriteFile(path, []byte(tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := DashboardQueries(path); !errors.Is(err, tt.wantErr) {
				t.Errorf("DashboardQueries = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestDashboardQueriesParseWithPromtool has promtool parse every expanded
// query as a recording rule: a syntax error in a panel fails here rather
// than as an empty panel.
func TestDashboardQueriesParseWithPromtool(t *testing.T) {
	promtool := lookPromtool(t)
	qs, err := DashboardQueries(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("groups:\n- name: dashboard\n  rules:\n")
	for i, q := range qs {
		fmt.Fprintf(&b, "  - record: dashboard:query%d\n    expr: %q\n", i, q)
	}
	path := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
	if err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}

func FuzzExpandQuery(f *testing.F) {
	qs, err := DashboardQueries(dashboardFile)
	if err != nil {
		f.Fatal(err)
	}
	d, _ := loadDashboard(dashboardFile)
	walkPanels(d.Panels, func(p *grafanaPanel) {
		for _, tg := range p.Targets {
			f.Add(tg.Expr)
		}
	})
	for _, q := range qs {
		f.Add(q)
	}
	f.Add("${queue:regex} $ ${ $__ ${}")
	f.Fuzz(func(t *testing.T, expr string) {
		got := expandQuery(expr)
		// Every "$" that starts a variable reference is gone; a "$" that
		// starts none (as in "$$x") is left as it was.
		lone := strings.Count(expr, "$") - len(grafanaVar.FindAllString(expr, -1))
		if n := strings.Count(got, "$"); n != lone {
			t.Errorf("expandQuery(%q) = %q: %d \"$\" left, want %d", expr, got, n, lone)
		}
		metricNames(got) // must not panic
	})
}
