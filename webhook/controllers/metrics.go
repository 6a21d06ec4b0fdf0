package controllers

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"stash.dev/redis/api/v1alpha1"
)

// Metrics are the gauges of sessions and repositories, under Stash's names so that
// existing dashboards and alerts keep working. Unlike Stash, they are served on the
// manager's /metrics (no Pushgateway needed), and failures are exported too.
type Metrics struct {
	BackupSuccess         *prometheus.GaugeVec
	BackupDuration        *prometheus.GaugeVec
	BackupLastSuccessTime *prometheus.GaugeVec
	BackupKeys            *prometheus.GaugeVec
	BackupSize            *prometheus.GaugeVec
	RestoreSuccess        *prometheus.GaugeVec
	RestoreDuration       *prometheus.GaugeVec
	RepositorySnapshots   *prometheus.GaugeVec
	RepositorySize        *prometheus.GaugeVec
	RepositoryCleaned     *prometheus.GaugeVec
	RepositoryIntegrity   *prometheus.GaugeVec
	// ScheduleInterval is not Stash's: the gap between two runs of a BackupConfiguration's
	// schedule, so that an alert can say "no success within two intervals" without
	// knowing cron. Paused and deleted configurations have none.
	ScheduleInterval *prometheus.GaugeVec
	// continuous holds the followers' windows (status.continuous), exported with the lag
	// computed at each scrape.
	continuous *continuousWindows
}

var (
	sessionLabels    = []string{"namespace", "invoker_kind", "invoker_name", "repository"}
	repositoryLabels = []string{"namespace", "repository", "backend"}
	invokerLabels    = []string{"namespace", "invoker_kind", "invoker_name"}
)

// NewMetrics creates the gauges and registers them with reg (nil means controller-runtime's
// registry, which the manager serves on /metrics).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = metrics.Registry
	}
	g := func(name, help string, labels []string) *prometheus.GaugeVec {
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "stash_appscode_com_" + name, Help: help}, labels)
		reg.MustRegister(v)
		return v
	}
	cw := &continuousWindows{windows: map[[2]string]continuousWindow{}}
	reg.MustRegister(cw)
	return &Metrics{
		continuous:            cw,
		BackupSuccess:         g("backupsession_success", "1 when the last backup session succeeded, 0 when it failed.", sessionLabels),
		BackupDuration:        g("backupsession_duration_seconds", "Time the last backup session took.", sessionLabels),
		BackupLastSuccessTime: g("backupsession_last_success_time_seconds", "Unix time of the last successful backup session.", sessionLabels),
		BackupKeys:            g("backupsession_host_keys_total", "Keys written by the last successful backup session.", sessionLabels),
		BackupSize:            g("backupsession_host_data_uploaded_bytes", "Bytes stored by the last successful backup session.", sessionLabels),
		RestoreSuccess:        g("restoresession_success", "1 when the last restore session succeeded, 0 when it failed.", sessionLabels),
		RestoreDuration:       g("restoresession_duration_seconds", "Time the last restore session took.", sessionLabels),
		RepositorySnapshots:   g("repository_snapshot_count", "Number of snapshots in the repository.", repositoryLabels),
		RepositorySize:        g("repository_size_bytes", "Stored size of the repository.", repositoryLabels),
		RepositoryCleaned:     g("repository_snapshot_cleaned", "Snapshots removed by the last retention run.", repositoryLabels),
		RepositoryIntegrity:   g("repository_integrity", "1 when the last check of the repository passed, 0 when it failed.", repositoryLabels),
		ScheduleInterval:      g("backupconfiguration_schedule_interval_seconds", "Seconds between two scheduled runs of the BackupConfiguration (absent while paused).", invokerLabels),
	}
}

// continuousWindow is the recoverable window of one follower.
type continuousWindow struct{ start, end time.Time }

// continuousWindows exports the windows of the continuous-backup followers. The lag (now minus
// the window's end) is computed when Prometheus scrapes, so that a follower that stopped
// reporting shows a growing lag rather than the last value it set.
type continuousWindows struct {
	mu      sync.Mutex
	windows map[[2]string]continuousWindow // by namespace, BackupConfiguration name
	now     func() time.Time
}

var (
	continuousLabels = []string{"namespace", "invoker_kind", "invoker_name"}
	continuousLag    = prometheus.NewDesc("stash_continuous_lag_seconds",
		"Seconds since the follower received the last command of its newest closed journal segment.", continuousLabels, nil)
	continuousWindowSeconds = prometheus.NewDesc("stash_continuous_recoverable_window_seconds",
		"Length of the window a point-in-time restore can reach through the current chain.", continuousLabels, nil)
	continuousStart = prometheus.NewDesc("stash_continuous_window_start_timestamp_seconds",
		"Unix time of the current chain's base snapshot: the oldest instant it restores to.", continuousLabels, nil)
	continuousEnd = prometheus.NewDesc("stash_continuous_window_end_timestamp_seconds",
		"Unix time of the newest instant the journal restores to.", continuousLabels, nil)
)

func (c *continuousWindows) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{continuousLag, continuousWindowSeconds, continuousStart, continuousEnd} {
		ch <- d
	}
}

func (c *continuousWindows) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	if c.now != nil {
		now = c.now()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, w := range c.windows {
		l := []string{k[0], v1alpha1.KindBackupConfiguration, k[1]}
		ch <- prometheus.MustNewConstMetric(continuousLag, prometheus.GaugeValue, now.Sub(w.end).Seconds(), l...)
		ch <- prometheus.MustNewConstMetric(continuousWindowSeconds, prometheus.GaugeValue, w.end.Sub(w.start).Seconds(), l...)
		ch <- prometheus.MustNewConstMetric(continuousStart, prometheus.GaugeValue, float64(w.start.UnixMilli())/1e3, l...)
		ch <- prometheus.MustNewConstMetric(continuousEnd, prometheus.GaugeValue, float64(w.end.UnixMilli())/1e3, l...)
	}
}

// SetContinuous records the window a BackupConfiguration's follower reported; a zero end
// removes it.
func (m *Metrics) SetContinuous(ns, name string, start, end time.Time) {
	if m == nil {
		return
	}
	m.continuous.mu.Lock()
	defer m.continuous.mu.Unlock()
	if end.IsZero() {
		delete(m.continuous.windows, [2]string{ns, name})
		return
	}
	m.continuous.windows[[2]string{ns, name}] = continuousWindow{start: start, end: end}
}

// ForgetContinuous removes a BackupConfiguration's window (deleted, or continuous disabled).
func (m *Metrics) ForgetContinuous(ns, name string) {
	m.SetContinuous(ns, name, time.Time{}, time.Time{})
}

// Clock is the reconcilers' time source; tests may set Now.
type Clock struct {
	Now func() time.Time
}

func (c Clock) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}
