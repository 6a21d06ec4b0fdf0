package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/prometheus/client_golang/prometheus"

	"stash.dev/redis/webhook/controllers"
)

var committed = filepath.Join("..", "..", "config", "monitoring", "grafana-dashboard.json")

// TestCommittedDashboardIsGenerated: the JSON in config/ and in the chart is what the code builds.
func TestCommittedDashboardIsGenerated(t *testing.T) {
	want, err := render()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{committed, filepath.Join("..", "..", "charts", "stash-redis", "files", "grafana-dashboard.json")} {
		got, err := os.ReadFile(f)
		if err != nil || string(got) != string(want) {
			t.Errorf("%s is stale (err %v): run make generate", f, err)
		}
	}
}

// TestDashboardRoundTrip decodes the committed JSON with the SDK's decoder (panel and query
// types registered), validates it, encodes it again and expects the same JSON (a field the
// SDK's schema does not know would be lost), and compares it with the dashboard the
// builders make. The SDK's UnmarshalJSONStrict is not used: in v0.0.22 it drops every panel
// (each Panel's decoder returns an empty cog.BuildErrors as a non-nil error).
func TestDashboardRoundTrip(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	raw, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	var decoded dashboard.Dashboard
	if err := json.Unmarshal(raw, &decoded); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if err := noBuildErrors(decoded.Validate()); err != nil {
		t.Fatalf("validate: %v", err)
	}
	again, err := json.MarshalIndent(decoded, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(raw), string(again)+"\n"); diff != "" {
		t.Errorf("decode and encode changed the dashboard (-committed +round trip):\n%s", diff)
	}
	built, err := build().Build()
	if err != nil {
		t.Fatal(err)
	}
	if !decoded.Equals(built) {
		t.Errorf("the decoded dashboard differs from the built one")
	}
	var titles []string
	for _, p := range decoded.Panels {
		if p.Panel != nil && p.Panel.Title != nil {
			titles = append(titles, *p.Panel.Title)
		}
	}
	for _, want := range []string{"Last success age", "Success and failure over time", "Session duration", "Size per session", "Keys per session", "Restore results", "Continuous backup lag"} {
		if !contains(titles, want) {
			t.Errorf("no panel %q among %q", want, titles)
		}
	}
}

// collectors records what NewMetrics registers, to learn the metric names stash-webhook serves.
type collectors struct{ cs []prometheus.Collector }

func (r *collectors) Register(c prometheus.Collector) error   { r.cs = append(r.cs, c); return nil }
func (r *collectors) MustRegister(cs ...prometheus.Collector) { r.cs = append(r.cs, cs...) }
func (r *collectors) Unregister(prometheus.Collector) bool    { return true }

// notYetExported are metrics of features that land later; the panels wait for them.
var notYetExported = []string{"stash_continuous_lag_seconds"}

// TestDashboardQueriesNameServedMetrics: every metric a panel or variable queries is one that
// stash-webhook registers (or one listed in notYetExported), so a renamed metric fails here.
func TestDashboardQueriesNameServedMetrics(t *testing.T) {
	reg := &collectors{}
	controllers.NewMetrics(reg)
	served := append([]string(nil), notYetExported...)
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	for _, c := range reg.cs {
		ch := make(chan *prometheus.Desc, 4)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			if m := fqName.FindStringSubmatch(d.String()); m != nil {
				served = append(served, m[1])
			}
		}
	}
	raw, err := os.ReadFile(committed)
	if err != nil {
		t.Fatal(err)
	}
	used := regexp.MustCompile(`stash_[a-z_]+`).FindAllString(string(raw), -1)
	sort.Strings(used)
	if len(used) == 0 {
		t.Fatal("the dashboard queries no stash metric")
	}
	for _, m := range used {
		if !contains(served, m) {
			t.Errorf("the dashboard queries %s, which stash-webhook does not serve (it serves %s)", m, strings.Join(served, ", "))
		}
	}
}

// noBuildErrors turns the SDK's empty cog.BuildErrors, which it may return as a non-nil
// error even when it found nothing, into nil.
func noBuildErrors(err error) error {
	if errs, ok := err.(cog.BuildErrors); ok && len(errs) == 0 {
		return nil
	}
	return err
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
