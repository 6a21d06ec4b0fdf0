package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/config"
)

func TestFollow(t *testing.T) {
	start := metav1.NewTime(time.Now().Add(-2 * time.Second))
	running := sessionState{phase: v1alpha1.SessionRunning, keys: 10, bytes: 2048, start: &start}
	tests := []struct {
		name    string
		states  []sessionState
		timeout time.Duration
		wantErr string
		wantOut []string
	}{
		{name: "succeeded", states: []sessionState{{}, running, {phase: v1alpha1.SessionSucceeded, snapshot: "20261125T233500Z-3f9a1c", keys: 20, bytes: 4096, duration: "3s"}},
			wantOut: []string{"Pending", "Running    10 keys  2.0 KiB", "succeeded: snapshot 20261125T233500Z-3f9a1c, 20 keys, 4.0 KiB in 3s"}},
		{name: "failed with job", states: []sessionState{running, {phase: v1alpha1.SessionFailed, errMsg: "dial redis: connection refused\nmore", job: "stash-backup-x-1"}},
			wantErr: `backupsession "x-1" failed: dial redis: connection refused (see: kubectl logs job/stash-backup-x-1 -n db)`},
		{name: "failed before a job", states: []sessionState{{phase: v1alpha1.SessionSkipped}},
			wantErr: `backupsession "x-1" skipped: no reason recorded (see: kubectl stash backup describe x -n db)`},
		{name: "timeout", states: []sessionState{running}, timeout: 50 * time.Millisecond,
			wantErr: `timed out after 50ms waiting for backupsession "x-1", still Running (see: kubectl stash backup describe x -n db)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			i := 0
			var out bytes.Buffer
			err := follow(context.Background(), &out, followOptions{
				kind: v1alpha1.KindBackupSession, name: "x-1", ns: "db", interval: time.Millisecond, timeout: tc.timeout,
				describe: "kubectl stash backup describe x -n db",
				get: func(context.Context) (sessionState, error) {
					s := tc.states[min(i, len(tc.states)-1)]
					i++
					return s, nil
				},
			})
			if tc.wantErr == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr) {
				t.Fatalf("got error %v\nwant %s", err, tc.wantErr)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestFollowReturnsGetErrors(t *testing.T) {
	err := follow(context.Background(), &bytes.Buffer{}, followOptions{interval: time.Millisecond,
		get: func(context.Context) (sessionState, error) { return sessionState{}, errors.New("boom") }})
	if err == nil || err.Error() != "boom" {
		t.Fatalf("got %v", err)
	}
}

func TestExplain(t *testing.T) {
	k := &kube{namespace: "db", config: &rest.Config{Host: "https://10.0.0.1:6443"}}
	gr := schema.GroupResource{Group: "stash.dev", Resource: "backupconfigurations"}
	noResource := apierrors.NewNotFound(gr, "")
	unreachable := &url.Error{Op: "Get", URL: "https://10.0.0.1:6443/apis", Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"not found", apierrors.NewNotFound(gr, "x"), `backupconfiguration "x" not found in namespace "db" (see: kubectl stash backup list -n db)`},
		{"crd missing", noResource, `the server has no backupconfigurations resource: the stash.dev CRDs are not installed (see: kubectl stash install)`},
		{"forbidden", apierrors.NewForbidden(gr, "x", errors.New(`User "bob" cannot get resource`)),
			`backupconfigurations.stash.dev "x" is forbidden: User "bob" cannot get resource (see: kubectl auth can-i --list -n db, and ask a cluster admin for access)`},
		{"unreachable", unreachable, `cannot reach the Kubernetes API server at https://10.0.0.1:6443: dial tcp: connect: connection refused (check --context and --kubeconfig; see: kubectl cluster-info)`},
		{"namespace missing", apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "db"), `namespaces "db" not found (see: kubectl stash backup list -n db)`},
		{"other", fmt.Errorf("first\nsecond"), "first"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := k.explain(tc.err, v1alpha1.KindBackupConfiguration, "x", "kubectl stash backup list -n db")
			if got.Error() != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestInstallObjects(t *testing.T) {
	objs, err := installObjects(config.FS, installSettings{image: "reg/webhook:v1", runnerImage: "reg/runner:v1",
		webhookURL: "https://10.0.0.5:9443/", caBundle: []byte("CA"), withAppBinding: true})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, u := range objs {
		kinds = append(kinds, u.GetKind()+"/"+u.GetName())
		if u.GetKind() == "Kustomization" {
			t.Error("kustomization.yaml was applied")
		}
	}
	joined := strings.Join(kinds, " ")
	for _, want := range []string{"CustomResourceDefinition/appbindings.appcatalog.appscode.com", "CustomResourceDefinition/repositories.stash.dev",
		"Namespace/stash-system", "Deployment/stash-webhook", "MutatingWebhookConfiguration/stash-webhook", "ValidatingWebhookConfiguration/stash-webhook"} {
		if !strings.Contains(joined, want) {
			t.Errorf("missing %s in %s", want, joined)
		}
	}
	if !strings.HasPrefix(kinds[0], "CustomResourceDefinition/") || !strings.HasPrefix(kinds[len(kinds)-1], "ValidatingWebhookConfiguration/") {
		t.Errorf("CRDs must come first and webhooks last: %s", joined)
	}
	for _, u := range objs {
		data, _ := u.MarshalJSON()
		s := string(data)
		switch u.GetKind() {
		case "Deployment":
			if !strings.Contains(s, `"image":"reg/webhook:v1"`) || !strings.Contains(s, `--runner-image=reg/runner:v1`) {
				t.Errorf("images not set: %s", s)
			}
		case "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration":
			if strings.Contains(s, `"service"`) || !strings.Contains(s, `"url":"https://10.0.0.5:9443/validate-stash-dev-v1alpha1-repository"`) && u.GetKind() == "ValidatingWebhookConfiguration" {
				t.Errorf("webhook not pointed at the URL: %s", s)
			}
			if !strings.Contains(s, `"caBundle":"Q0E="`) {
				t.Errorf("caBundle not set: %s", s)
			}
		}
	}

	objs, err = installObjects(config.FS, installSettings{skipDeployment: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range objs {
		if u.GetKind() == "Deployment" || u.GetName() == "appbindings.appcatalog.appscode.com" {
			t.Errorf("%s/%s installed", u.GetKind(), u.GetName())
		}
	}
}

func TestInstallObjectsRejectsBrokenManifests(t *testing.T) {
	fsys := fstest.MapFS{"deploy/x.yaml": {Data: []byte("kind: [")}}
	if _, err := installObjects(fsys, installSettings{}); err == nil {
		t.Fatal("no error for a broken manifest")
	}
}

func TestInstallDryRunPrintsManifests(t *testing.T) {
	out, _, err := runStash(t, "", "install", "--dry-run", "-o", "yaml", "--image", "reg/webhook:v2", "--skip-deployment")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, "kind: CustomResourceDefinition") != 5 || strings.Contains(out, "kind: Deployment") || !strings.Contains(out, "kind: ValidatingWebhookConfiguration") {
		t.Errorf("unexpected manifests:\n%.2000s", out)
	}
	if _, _, err := runStash(t, "", "install", "--webhook-url", "http://insecure:80"); err == nil || !strings.Contains(err.Error(), "https only") {
		t.Errorf("http webhook URL: got %v", err)
	}
}

func TestConvert(t *testing.T) {
	file := filepath.Join("testdata", "convert", "stash.yaml")
	out, errOut, err := runStash(t, "", "convert", "-f", file)
	if err != nil {
		t.Fatalf("convert: %v\n%s", err, errOut)
	}
	golden := filepath.Join("testdata", "convert", "stash-dev.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != out {
		t.Errorf("output differs from %s (go test ./plugin -run TestConvert -update rewrites it):\n%s", golden, out)
	}
	for _, w := range []string{"dropped spec.tempDir", "dropped spec.task.params", "dropped spec.runtimeSettings.container.nice",
		"dropped spec.target.alias", "dropped spec.rules[0].targetHosts", `BackupBatch "batch" has no stash.dev equivalent`} {
		if !strings.Contains(errOut, w) {
			t.Errorf("warnings lack %q:\n%s", w, errOut)
		}
	}
	if strings.Contains(errOut, "dropped spec.hooks") || strings.Contains(out+errOut, "not-a-real-token") {
		t.Errorf("hooks dropped, or the inline token printed:\n%s", errOut)
	}
	// The converted objects pass validation.
	tmp := filepath.Join(t.TempDir(), "out.yaml")
	if err := os.WriteFile(tmp, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	if vout, verr, err := runStash(t, "", "validate", "-f", tmp); err != nil {
		t.Fatalf("converted objects are invalid: %v\n%s%s", err, vout, verr)
	}
}

func TestConvertErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"volume snapshotter", "apiVersion: stash.appscode.com/v1beta1\nkind: BackupConfiguration\nmetadata: {name: b}\nspec: {driver: VolumeSnapshotter}\n", "only dump backups"},
		{"invalid result", "apiVersion: stash.appscode.com/v1alpha1\nkind: Repository\nmetadata: {name: r}\nspec: {backend: {b2: {bucket: x}, storageSecretName: s}}\n", "converted objects are invalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runStash(t, tc.doc, "convert", "-f", "-")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestPrintableRedactsSecrets(t *testing.T) {
	s := buildStorageSecret("s", "db", map[string]string{v1alpha1.SecretKeyResticPassword: "pw", v1alpha1.SecretKeyAWSSecretAccessKey: "key", v1alpha1.SecretKeyAWSAccessKeyID: "id"})
	got := printable(s).(*unstructured.Unstructured)
	want := map[string]any{
		"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": map[string]any{"name": "s", "namespace": "db"},
		"stringData": map[string]any{v1alpha1.SecretKeyAWSAccessKeyID: "id"},
		"data":       map[string]any{v1alpha1.SecretKeyResticPassword: redacted, v1alpha1.SecretKeyAWSSecretAccessKey: redacted},
	}
	if diff := cmp.Diff(want, got.Object); diff != "" {
		t.Errorf("printed secret (-want +got):\n%s", diff)
	}
	if string(s.Data[v1alpha1.SecretKeyResticPassword]) != "pw" {
		t.Error("printable changed the Secret it was given")
	}
	// What makes it safe: the API (kubectl apply) cannot decode it into a Secret.
	var back corev1.Secret
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(got.Object, &back); err == nil {
		t.Errorf("the printed Secret decodes into an applyable Secret: %+v", back.Data)
	}
}

func TestRepositoryURL(t *testing.T) {
	repo := func(b v1alpha1.Backend) *v1alpha1.Repository {
		return &v1alpha1.Repository{Spec: v1alpha1.RepositorySpec{Backend: b}}
	}
	local := &v1alpha1.LocalSpec{MountPath: "/repo", SubPath: "redis"}
	hostLocal := local.DeepCopy()
	hostLocal.HostPath = &corev1.HostPathVolumeSource{Path: "/data/backups"}
	tests := []struct {
		name    string
		repo    *v1alpha1.Repository
		want    string
		wantErr bool
	}{
		{"gcs", repo(v1alpha1.Backend{GCS: &v1alpha1.GCSSpec{Bucket: "b", Prefix: "/p/q/"}}), "gs://b/p/q", false},
		{"s3", repo(v1alpha1.Backend{S3: &v1alpha1.S3Spec{Bucket: "b", Endpoint: "http://minio:9000"}}), "s3://b?endpoint=http%3A%2F%2Fminio%3A9000", false},
		{"azure", repo(v1alpha1.Backend{Azure: &v1alpha1.AzureSpec{Container: "c", Prefix: "p"}}), "azblob://c/p", false},
		{"local host path", repo(v1alpha1.Backend{Local: hostLocal}), "file:///data/backups/redis", false},
		{"local pvc", repo(v1alpha1.Backend{Local: local}), "", true},
	}
	for _, tc := range tests {
		got, err := repositoryURL(tc.repo)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q (error %t)", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}
