package plugin_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"stash.dev/redis/test/testproc"
)

// TestInstallStatusUninstall installs into a fresh control plane without our CRDs, with the
// webhooks pointed at the test cluster's in-process webhook server (a controller running
// as a local process), checks status, and uninstalls.
func TestInstallStatusUninstall(t *testing.T) {
	env := &envtest.Environment{}
	if _, err := env.Start(); err != nil {
		t.Fatalf("start a second control plane: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	kc := addUser(t, env, "admin", "system:masters")
	wo := cluster.Env.WebhookInstallOptions
	ca := filepath.Join(t.TempDir(), "ca.crt")
	writeFile(t, ca, string(wo.LocalServingCAData))
	url := fmt.Sprintf("https://%s:%d", wo.LocalServingHost, wo.LocalServingPort)
	admin := kubectl.As(kc)

	for range 2 { // a second install is an idempotent upgrade
		out := admin.Must(t, "stash", "install", "--webhook-url", url, "--ca-bundle-file", ca, "--image", "reg.example/stash-webhook:v9", "--runner-image", "reg.example/stash-runner:v9")
		for _, want := range []string{"customresourcedefinition.apiextensions.k8s.io/repositories.stash.dev applied", "validatingwebhookconfiguration.admissionregistration.k8s.io/stash-webhook applied", "deployment.apps/stash-webhook applied"} {
			if !strings.Contains(out, want) {
				t.Errorf("install output lacks %q:\n%s", want, out)
			}
		}
	}
	out := admin.Must(t, "get", "crd", "-o", "name")
	for _, crd := range []string{"repositories.stash.dev", "backupconfigurations.stash.dev", "backupsessions.stash.dev", "restoresessions.stash.dev", "appbindings.appcatalog.appscode.com"} {
		if !strings.Contains(out, crd) {
			t.Errorf("CRD %s not installed:\n%s", crd, out)
		}
	}
	out = admin.Must(t, "get", "validatingwebhookconfiguration", "stash-webhook", "-o", "jsonpath={.webhooks[0].clientConfig.url}")
	if !strings.HasPrefix(out, url+"/validate-stash-dev-v1alpha1-") {
		t.Errorf("webhook url %q", out)
	}
	out = admin.Must(t, "-n", "stash-system", "get", "deployment", "stash-webhook", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].args}")
	if !strings.Contains(out, "reg.example/stash-webhook:v9") || !strings.Contains(out, "--runner-image=reg.example/stash-runner:v9") {
		t.Errorf("deployment: %s", out)
	}

	// status: the webhook answers (through the URL), the CRDs are there, and the
	// Deployment never becomes ready because nothing runs pods here.
	var statusOut string
	testproc.Eventually(t, 20*time.Second, "kubectl stash status shows the webhook ok", func() error {
		statusOut, _ = admin.Try(t, "stash", "status")
		if !regexpMatch(statusOut, `webhook\s+ok`) {
			return fmt.Errorf("status:\n%s", statusOut)
		}
		return nil
	})
	for _, want := range []string{`webhook\s+ok\s+admission dry run`, `controller\s+FAIL\s+0/2 replicas ready`, `crd repositories.stash.dev\s+ok\s+served v1alpha1, stored v1alpha1`} {
		if !regexpMatch(statusOut, want) {
			t.Errorf("status lacks %s:\n%s", want, statusOut)
		}
	}
	if _, err := admin.Try(t, "stash", "status"); exitCode(err) != 1 {
		t.Errorf("status with a controller that is not ready: exit %v, want 1", err)
	}

	out = admin.Must(t, "stash", "uninstall")
	if !strings.Contains(out, "validatingwebhookconfiguration/stash-webhook deleted") || !strings.Contains(out, "customresourcedefinition/repositories.stash.dev deleted") {
		t.Errorf("uninstall:\n%s", out)
	}
	testproc.Eventually(t, 30*time.Second, "the stash CRDs and webhook configurations are gone after uninstall", func() error {
		out = admin.Must(t, "get", "crd,validatingwebhookconfiguration,mutatingwebhookconfiguration", "-o", "name")
		if strings.Contains(out, "stash") {
			return fmt.Errorf("still there:\n%s", out)
		}
		return nil
	})
	if !strings.Contains(out, "appbindings.appcatalog.appscode.com") {
		t.Errorf("uninstall removed the AppBinding CRD, which KubeDB may own:\n%s", out)
	}
	out, err := admin.Try(t, "stash", "backup", "trigger", "nightly")
	if exitCode(err) != 1 || strings.TrimSpace(out) != "error: the server has no backupconfigurations resource: the stash.dev CRDs are not installed (see: kubectl stash install)" {
		t.Errorf("trigger without CRDs: %v\n%s", err, out)
	}
	if out := admin.Must(t, "stash", "uninstall"); strings.Contains(out, "deleted") {
		t.Errorf("second uninstall deleted something:\n%s", out)
	}
}
