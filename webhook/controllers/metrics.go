package controllers

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
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
	return &Metrics{
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
