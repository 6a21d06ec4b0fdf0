package e2enode

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/repo"
)

// apiClient is a typed client of the cluster as its admin, for reading sessions and Pods.
func apiClient(t *testing.T) client.Client {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cluster.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// applyYAML writes manifest to a file and applies it through the API server (and so through
// the admission webhook).
func applyYAML(t *testing.T, manifest string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(f, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	admin.Must(t, "apply", "-f", f)
}

// triggeredSession runs `kubectl stash backup trigger` without waiting and returns the
// BackupSession it created.
func triggeredSession(t *testing.T, ns, bc string) string {
	t.Helper()
	out := admin.Must(t, "stash", "backup", "trigger", bc, "-n", ns)
	for _, f := range strings.Fields(out) {
		if name, ok := strings.CutPrefix(f, "backupsession.stash.dev/"); ok {
			return name
		}
	}
	t.Fatalf("trigger printed no session: %s", out)
	return ""
}

// waitBackupSession waits until the session has ended and returns it.
func waitBackupSession(t *testing.T, c client.Client, ns, name string, timeout time.Duration) *v1alpha1.BackupSession {
	t.Helper()
	s := &v1alpha1.BackupSession{}
	waitFor(t, timeout, "BackupSession "+ns+"/"+name+" ends", func() error {
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
			return err
		}
		switch s.Status.Phase {
		case v1alpha1.SessionSucceeded, v1alpha1.SessionFailed, v1alpha1.SessionSkipped, v1alpha1.SessionInvalid:
			return nil
		}
		return fmt.Errorf("phase %q", s.Status.Phase)
	})
	return s
}

// waitRestoreSession waits until the restore has ended and returns it.
func waitRestoreSession(t *testing.T, c client.Client, ns, name string, timeout time.Duration) *v1alpha1.RestoreSession {
	t.Helper()
	rs := &v1alpha1.RestoreSession{}
	waitFor(t, timeout, "RestoreSession "+ns+"/"+name+" ends", func() error {
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, rs); err != nil {
			return err
		}
		switch rs.Status.Phase {
		case v1alpha1.SessionSucceeded, v1alpha1.SessionFailed, v1alpha1.SessionInvalid:
			return nil
		}
		return fmt.Errorf("phase %q", rs.Status.Phase)
	})
	return rs
}

// sessionPod returns the (single) Pod of a session's Job.
func sessionPod(t *testing.T, c client.Client, ns, session string) *corev1.Pod {
	t.Helper()
	var pods corev1.PodList
	if err := c.List(context.Background(), &pods, client.InNamespace(ns), client.MatchingLabels{v1alpha1.LabelSession: session}); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 {
		t.Fatalf("session %s/%s has %d Pods, want 1", ns, session, len(pods.Items))
	}
	return &pods.Items[0]
}

// snapshots lists the repository's snapshots with `kubectl stash snapshots list -o json`, which
// reads the repository itself (a hostPath on this machine) with the storage Secret.
func snapshots(t *testing.T, ns, repository string) []repo.Manifest {
	t.Helper()
	cmd := cluster.KubectlCommand(context.Background(), "stash", "snapshots", "list", repository, "-n", ns, "-o", "json")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if strings.Contains(stderr.String(), "has no snapshots yet") {
			return nil // the repository was never initialized
		}
		t.Fatalf("snapshots list %s/%s: %v\n%s", ns, repository, err, stderr.String())
	}
	var list []repo.Manifest
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("snapshots list %s/%s: %v\n%s", ns, repository, err, out)
	}
	return list
}
