package controllers

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	ctrl "sigs.k8s.io/controller-runtime"

	"stash.dev/redis/webhook/jobs"
)

// Setup registers the three reconcilers with mgr. reg receives the metrics (nil: the
// manager's /metrics registry).
func Setup(mgr ctrl.Manager, o jobs.Options, reg prometheus.Registerer) (*Metrics, error) {
	m := NewMetrics(reg)
	rec := mgr.GetEventRecorder("stash-webhook")
	if err := (&BackupConfigurationReconciler{Client: mgr.GetClient(), Recorder: rec, Jobs: o, Metrics: m}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up backupconfiguration controller: %w", err)
	}
	if err := (&BackupSessionReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: rec, Jobs: o, Metrics: m}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up backupsession controller: %w", err)
	}
	if err := (&RestoreSessionReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: rec, Jobs: o, Metrics: m}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up restoresession controller: %w", err)
	}
	return m, nil
}
