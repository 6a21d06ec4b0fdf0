package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/test/clustertest"
	"stash.dev/redis/test/testproc"
	stashwebhook "stash.dev/redis/webhook"
)

// TestSelfManagedCertificates runs the real main (run) against a real API server with the
// webhook configurations of config/deploy pointed at it: the binary generates its CA and
// serving certificate, injects the CA into both configurations, and then admits and denies.
func TestSelfManagedCertificates(t *testing.T) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make test`")
	}
	root := clustertest.RootDir()
	env := &envtest.Environment{
		ErrorIfCRDPathMissing: true,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases"), filepath.Join(root, "config", "crd", "appcatalog")},
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	user, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, _ := user.KubeConfig()
	kcPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kcPath, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kcPath)
	c, err := client.New(cfg, client.Options{Scheme: stashwebhook.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, ns := range []string{"stash-system", "demo"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	// config/deploy ships the (empty) certificate Secret that the binary fills.
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "stash-webhook-cert", Namespace: "stash-system"}}); err != nil {
		t.Fatal(err)
	}

	port, err := testproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	installWebhooks(ctx, t, c, filepath.Join(root, "config", "deploy", "webhook.yaml"), fmt.Sprintf("https://localhost:%d", port))

	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, options{
			certDir: t.TempDir(), namespace: "stash-system", serviceName: "stash-webhook", webhookConfig: "stash-webhook",
			certSecret: "stash-webhook-cert", extraDNSNames: "localhost", host: "127.0.0.1", port: port, writeCerts: true,
			metricsAddr: "0", probeAddr: "0",
		})
	}()

	bad := &v1alpha1.BackupConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: "demo"}, Spec: v1alpha1.BackupConfigurationSpec{
		Schedule: "every day", Repository: v1alpha1.RepositoryRef{Name: "r"}, Target: v1alpha1.Target{Ref: &v1alpha1.TargetRef{Name: "x"}},
	}}
	testproc.Eventually(t, 60*time.Second, "the webhook denies the invalid object", func() error {
		select {
		case rerr := <-done:
			return testproc.Abort(fmt.Errorf("stash-webhook exited: %v", rerr))
		default:
		}
		err := c.Create(ctx, bad.DeepCopy())
		if err != nil && strings.Contains(err.Error(), `spec.schedule: Invalid value: "every day": not a valid cron expression`) {
			return nil
		}
		if err == nil {
			_ = c.Delete(ctx, bad)
			return errors.New("it admitted it")
		}
		return err
	})
	// The mutating webhook answers too, with the same certificate.
	repo := &v1alpha1.Repository{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "demo"}, Spec: v1alpha1.RepositorySpec{Backend: v1alpha1.Backend{
		StorageSecretName: "s", GCS: &v1alpha1.GCSSpec{Bucket: "stash-backups", Prefix: "/x/"}}}}
	if err := c.Create(ctx, repo); err != nil {
		t.Fatal(err)
	}
	if repo.Spec.Backend.GCS.Prefix != "x" {
		t.Errorf("repository not defaulted: prefix %q", repo.Spec.Backend.GCS.Prefix)
	}
	var secret corev1.Secret
	if err := c.Get(ctx, types.NamespacedName{Namespace: "stash-system", Name: "stash-webhook-cert"}, &secret); err != nil || len(secret.Data["ca.crt"]) == 0 {
		t.Errorf("certificate Secret: %v (keys %d)", err, len(secret.Data))
	}
	var m admissionregistrationv1.MutatingWebhookConfiguration
	if err := c.Get(ctx, types.NamespacedName{Name: "stash-webhook"}, &m); err != nil || len(m.Webhooks[0].ClientConfig.CABundle) == 0 {
		t.Errorf("CA not injected into the mutating configuration: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("stash-webhook: %v", err)
	}
}

// installWebhooks creates the configurations of config/deploy with their clientConfig
// pointing at base instead of the in-cluster Service.
func installWebhooks(ctx context.Context, t *testing.T, c client.Client, file, base string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var raw map[string]any
		if err := dec.Decode(&raw); err != nil {
			break
		}
		b, err := json.Marshal(raw)
		if err != nil {
			t.Fatal(err)
		}
		switch raw["kind"] {
		case "MutatingWebhookConfiguration":
			var m admissionregistrationv1.MutatingWebhookConfiguration
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			for i := range m.Webhooks {
				m.Webhooks[i].ClientConfig = urlConfig(base, m.Webhooks[i].ClientConfig)
			}
			if err := c.Create(ctx, &m); err != nil {
				t.Fatal(err)
			}
		case "ValidatingWebhookConfiguration":
			var v admissionregistrationv1.ValidatingWebhookConfiguration
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
			for i := range v.Webhooks {
				v.Webhooks[i].ClientConfig = urlConfig(base, v.Webhooks[i].ClientConfig)
			}
			if err := c.Create(ctx, &v); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func urlConfig(base string, cc admissionregistrationv1.WebhookClientConfig) admissionregistrationv1.WebhookClientConfig {
	u := base + *cc.Service.Path
	return admissionregistrationv1.WebhookClientConfig{URL: &u}
}
