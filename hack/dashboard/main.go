// Command dashboard writes the Grafana dashboard of kubectl-stash for Redis, built with the
// typed builders of grafana-foundation-sdk rather than written as JSON by hand, so that a
// misspelt field does not compile. `make generate` runs it:
//
//	go run ./hack/dashboard -out config/monitoring/grafana-dashboard.json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

func main() {
	out := flag.String("out", "config/monitoring/grafana-dashboard.json", "file to write")
	flag.Parse()
	b, err := render()
	if err == nil {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// render returns the dashboard as indented JSON with a final newline.
func render() ([]byte, error) {
	d, err := build().Build()
	if err != nil {
		return nil, fmt.Errorf("build dashboard: %w", err)
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode dashboard: %w", err)
	}
	return append(b, '\n'), nil
}

// The selection every backup query filters on: the dashboard's namespace and
// BackupConfiguration variables.
const (
	selected = `namespace=~"$namespace", invoker_kind="BackupConfiguration", invoker_name=~"$backupconfiguration"`
	legend   = "{{namespace}}/{{invoker_name}}"
)

var datasource = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

func query(expr, legendFormat string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Expr(expr).LegendFormat(legendFormat).Datasource(datasource)
}

func statPanel(title, description, unit, expr string) *stat.PanelBuilder {
	return stat.NewPanelBuilder().Title(title).Description(description).Unit(unit).Datasource(datasource).
		Height(4).Span(6).WithTarget(query(expr, "").Instant())
}

func seriesPanel(title, description, unit string, targets ...*prometheus.DataqueryBuilder) *timeseries.PanelBuilder {
	p := timeseries.NewPanelBuilder().Title(title).Description(description).Unit(unit).Min(0).Datasource(datasource).
		Height(8).Span(12)
	for _, t := range targets {
		p = p.WithTarget(t)
	}
	return p
}

func variable(name, label, query string) *dashboard.QueryVariableBuilder {
	return dashboard.NewQueryVariableBuilder(name).Label(label).Datasource(datasource).
		Query(dashboard.StringOrMap{String: cog.ToPtr(query)}).Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Multi(true).IncludeAll(true).AllValue(".*")
}

// build describes the dashboard; README.md ("Monitoring") lists its panels.
func build() *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder("Redis backups (kubectl-stash)").
		Uid("stash-redis").
		Description("Backups and restores of Redis by kubectl-stash, per BackupConfiguration, from the metrics of stash-webhook.").
		Tags([]string{"redis", "backup", "stash"}).
		Refresh("1m").
		Time("now-7d", "now").
		Timezone(common.TimeZoneBrowser).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Data source").Type("prometheus")).
		WithVariable(variable("namespace", "Namespace", `label_values(stash_appscode_com_backupsession_success, namespace)`)).
		WithVariable(variable("backupconfiguration", "BackupConfiguration",
			`label_values(stash_appscode_com_backupsession_success{namespace=~"$namespace", invoker_kind="BackupConfiguration"}, invoker_name)`)).
		WithRow(dashboard.NewRowBuilder("Backups")).
		WithPanel(statPanel("Last success age", "Time since the last successful backup session.", "s",
			`time() - max by (namespace, invoker_name) (stash_appscode_com_backupsession_last_success_time_seconds{`+selected+`})`)).
		WithPanel(statPanel("Last session", "1 when the last backup session succeeded, 0 when it failed.", "bool_yes_no",
			`max by (namespace, invoker_name) (stash_appscode_com_backupsession_success{`+selected+`})`)).
		WithPanel(statPanel("Schedule interval", "Seconds between two scheduled runs; the stale-backup alert fires after two without a success.", "s",
			`max by (namespace, invoker_name) (stash_appscode_com_backupconfiguration_schedule_interval_seconds{`+selected+`})`)).
		WithPanel(statPanel("Snapshots in the repository", "Snapshots each repository of the namespace holds.", "short",
			`max by (namespace, repository) (stash_appscode_com_repository_snapshot_count{namespace=~"$namespace"})`)).
		WithPanel(seriesPanel("Success and failure over time", "Result of the last session at each moment: 1 succeeded, 0 failed.", "short",
			query(`max by (namespace, invoker_name) (stash_appscode_com_backupsession_success{`+selected+`})`, legend))).
		WithPanel(seriesPanel("Session duration", "Time the last backup session took.", "s",
			query(`max by (namespace, invoker_name) (stash_appscode_com_backupsession_duration_seconds{`+selected+`})`, legend))).
		WithPanel(seriesPanel("Size per session", "Bytes stored by the last successful session (compressed and encrypted).", "bytes",
			query(`max by (namespace, invoker_name) (stash_appscode_com_backupsession_host_data_uploaded_bytes{`+selected+`})`, legend))).
		WithPanel(seriesPanel("Keys per session", "Keys written by the last successful session.", "short",
			query(`max by (namespace, invoker_name) (stash_appscode_com_backupsession_host_keys_total{`+selected+`})`, legend))).
		WithRow(dashboard.NewRowBuilder("Restores and repositories")).
		WithPanel(seriesPanel("Restore results", "Result of the last RestoreSession: 1 succeeded, 0 failed.", "short",
			query(`max by (namespace, invoker_name) (stash_appscode_com_restoresession_success{namespace=~"$namespace"})`, legend))).
		WithPanel(seriesPanel("Restore duration", "Time the last RestoreSession took.", "s",
			query(`max by (namespace, invoker_name) (stash_appscode_com_restoresession_duration_seconds{namespace=~"$namespace"})`, legend))).
		WithPanel(seriesPanel("Repository size", "Stored size of each repository.", "bytes",
			query(`max by (namespace, repository) (stash_appscode_com_repository_size_bytes{namespace=~"$namespace"})`, "{{namespace}}/{{repository}}"))).
		WithPanel(seriesPanel("Continuous backup lag", "How far a continuous backup follower is behind its Redis.", "s",
			query(`max by (namespace, invoker_name) (stash_continuous_lag_seconds{`+selected+`})`, legend)))
}
