// Command stash-webhook serves the admission webhooks of stash.dev objects (and, as they
// land, the controllers that turn them into CronJobs and Jobs).
package main

import (
	"flag"
	"fmt"
	"os"

	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"stash.dev/redis/version"
	stashwebhook "stash.dev/redis/webhook"
)

func main() {
	var (
		certDir     = flag.String("cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory with tls.crt and tls.key for the webhook server")
		port        = flag.Int("webhook-port", 9443, "port of the webhook server")
		metricsAddr = flag.String("metrics-bind-address", ":8080", "address of the /metrics endpoint; 0 turns it off")
		probeAddr   = flag.String("health-probe-bind-address", ":8081", "address of /healthz and /readyz")
		leaderElect = flag.Bool("leader-elect", false, "elect a leader, for Deployments with more than one replica")
	)
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	klog.SetLogger(ctrl.Log)
	log := ctrl.Log.WithName("stash-webhook")
	log.Info("starting", "version", version.Version)

	if err := run(*certDir, *port, *metricsAddr, *probeAddr, *leaderElect); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(certDir string, port int, metricsAddr, probeAddr string, leaderElect bool) error {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 stashwebhook.NewScheme(),
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: probeAddr,
		WebhookServer:          crwebhook.NewServer(crwebhook.Options{Port: port, CertDir: certDir}),
		LeaderElection:         leaderElect,
		LeaderElectionID:       "stash-webhook.stash.dev",
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if err := stashwebhook.Setup(mgr); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return fmt.Errorf("add ready check: %w", err)
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}
