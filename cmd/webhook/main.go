// Command stash-webhook is the one Deployment of kubectl-stash: admission webhooks that
// default and validate stash.dev objects, and the controllers that turn them into CronJobs
// and Jobs and keep their status. It manages its own serving certificate (generated,
// rotated, and injected as caBundle into its webhook configurations), so installing it
// needs no cert-manager.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	// The time zone database, so that the admission webhook checks spec.timeZone in an image
	// without one.
	_ "time/tzdata"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"stash.dev/redis/version"
	stashwebhook "stash.dev/redis/webhook"
	"stash.dev/redis/webhook/controllers"
	"stash.dev/redis/webhook/jobs"
)

type options struct {
	certDir, namespace, serviceName, webhookConfig, certSecret string
	extraDNSNames                                              string
	disableCertRotation, writeCerts                            bool
	host                                                       string
	port                                                       int
	metricsAddr, probeAddr                                     string
	leaderElect                                                bool
	jobs                                                       jobs.Options
}

func main() {
	var o options
	flag.StringVar(&o.certDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory of tls.crt and tls.key; with --disable-cert-rotation, bring your own")
	flag.BoolVar(&o.disableCertRotation, "disable-cert-rotation", false, "do not generate and rotate the serving certificate (use the files in --cert-dir)")
	flag.BoolVar(&o.writeCerts, "write-cert-files", false, "write the rotated certificate from its Secret into --cert-dir (for a controller run outside the cluster; in a Pod the Secret is mounted there)")
	flag.StringVar(&o.namespace, "namespace", "stash-system", "namespace of the controller (its certificate Secret lives there)")
	flag.StringVar(&o.serviceName, "service-name", "stash-webhook", "Service in front of the webhook server, named in the certificate")
	flag.StringVar(&o.webhookConfig, "webhook-configuration", "stash-webhook", "name of the Mutating- and ValidatingWebhookConfiguration to inject the CA into")
	flag.StringVar(&o.certSecret, "cert-secret", "stash-webhook-cert", "Secret that stores the generated CA and serving certificate")
	flag.StringVar(&o.extraDNSNames, "cert-extra-names", "", "comma-separated extra names (or IPs) for the serving certificate, for a controller run outside the cluster")
	flag.StringVar(&o.host, "webhook-host", "", "address the webhook server listens on (default all)")
	flag.IntVar(&o.port, "webhook-port", 9443, "port of the webhook server")
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "address of /metrics; 0 turns it off")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	flag.BoolVar(&o.leaderElect, "leader-elect", false, "elect a leader, for Deployments with more than one replica")
	flag.StringVar(&o.jobs.RunnerImage, "runner-image", "stash.dev/stash-runner:"+version.Version, "image of stash-runner, run by the backup and restore Jobs")
	flag.StringVar(&o.jobs.PushgatewayURL, "pushgateway-url", "", "Prometheus Pushgateway the runners push their metrics to (the controller serves /metrics either way)")
	zo := zap.Options{}
	zo.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zo)))
	klog.SetLogger(ctrl.Log)
	ctrl.Log.WithName("stash-webhook").Info("starting", "version", version.Version, "runnerImage", o.jobs.RunnerImage)

	if err := run(ctrl.SetupSignalHandler(), o); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	server := &delayedServer{
		Server: crwebhook.NewServer(crwebhook.Options{Host: o.host, Port: o.port, CertDir: o.certDir}),
		ready:  make(chan struct{}),
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  stashwebhook.NewScheme(),
		Client:                  client.Options{Cache: controllers.ClientCacheOptions()},
		Metrics:                 metricsserver.Options{BindAddress: o.metricsAddr},
		HealthProbeBindAddress:  o.probeAddr,
		WebhookServer:           server,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "stash-webhook.stash.dev",
		LeaderElectionNamespace: o.namespace,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}

	// The webhook server may start only once its certificate exists (see delayedServer).
	certsReady := server.ready
	if o.disableCertRotation {
		close(certsReady)
	} else {
		var extra []string
		if o.extraDNSNames != "" {
			extra = strings.Split(o.extraDNSNames, ",")
		}
		err := rotator.AddRotator(mgr, &rotator.CertRotator{
			SecretKey:      types.NamespacedName{Namespace: o.namespace, Name: o.certSecret},
			CertDir:        o.certDir,
			CAName:         "stash-webhook-ca",
			CAOrganization: "stash.dev",
			DNSName:        fmt.Sprintf("%s.%s.svc", o.serviceName, o.namespace),
			ExtraDNSNames:  extra,
			IsReady:        certsReady,
			Webhooks: []rotator.WebhookInfo{
				{Name: o.webhookConfig, Type: rotator.Validating},
				{Name: o.webhookConfig, Type: rotator.Mutating},
			},
			RequireLeaderElection: false, // every replica serves admission and needs the files
		})
		if err != nil {
			return fmt.Errorf("set up certificate rotation: %w", err)
		}
		if o.writeCerts {
			if err := mgr.Add(&certWriter{c: mgr.GetAPIReader(), key: types.NamespacedName{Namespace: o.namespace, Name: o.certSecret}, dir: o.certDir}); err != nil {
				return err
			}
		}
	}
	if _, err := controllers.Setup(mgr, o.jobs, nil); err != nil {
		return err
	}
	if err := stashwebhook.Setup(mgr); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("webhook", server.StartedChecker()); err != nil {
		return fmt.Errorf("add ready check: %w", err)
	}
	return mgr.Start(ctx)
}

// delayedServer starts the webhook server only once the rotator has written its certificate.
// The webhooks are registered before the manager starts (registering on a running server
// races inside controller-runtime); only the listening waits.
type delayedServer struct {
	crwebhook.Server
	ready chan struct{}
}

// Start waits for the certificate, then serves until ctx ends.
func (s *delayedServer) Start(ctx context.Context) error {
	select {
	case <-s.ready:
		return s.Server.Start(ctx)
	case <-ctx.Done():
		return nil
	}
}
