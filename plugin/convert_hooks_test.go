package plugin

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigsyaml "sigs.k8s.io/yaml"

	"stash.dev/redis/api/v1alpha1"
)

// stashBC is a Stash v1beta1 BackupConfiguration whose spec.hooks is hooks (YAML, indented
// for spec.hooks).
func stashBC(hooks string) string {
	return `apiVersion: stash.appscode.com/v1beta1
kind: BackupConfiguration
metadata: {name: nightly, namespace: demo}
spec:
  schedule: "0 2 * * *"
  repository: {name: gcs-repo}
  target: {ref: {apiVersion: appcatalog.appscode.com/v1alpha1, kind: AppBinding, name: sample-redis}}
  hooks:
` + hooks
}

// TestConvertHooks converts each of Stash's handler kinds, under Stash's field names, and
// finds it unchanged in the stash.dev object.
func TestConvertHooks(t *testing.T) {
	tests := []struct {
		name, hooks string
		want        v1alpha1.BackupHooks
	}{
		{"exec with containerName", `    preBackup:
      exec: {command: [redis-cli, SET, marker, "1"]}
      containerName: redis
`, v1alpha1.BackupHooks{PreBackup: &v1alpha1.HookHandler{Exec: &corev1.ExecAction{Command: []string{"redis-cli", "SET", "marker", "1"}}, ContainerName: "redis"}}},
		{"httpGet", `    preBackup:
      httpGet: {host: app, port: 8080, path: /quiesce, scheme: HTTP, httpHeaders: [{name: X-Reason, value: backup}]}
`, v1alpha1.BackupHooks{PreBackup: &v1alpha1.HookHandler{HTTPGet: &v1alpha1.HTTPGetHook{Host: "app", Port: intstr.FromInt32(8080), Path: "/quiesce", Scheme: corev1.URISchemeHTTP,
			HTTPHeaders: []v1alpha1.HTTPHeader{{Name: "X-Reason", Value: "backup"}}}}}},
		{"httpPost with body and OnFailure", `    postBackup:
      executionPolicy: OnFailure
      httpPost: {host: chat.example.com, port: 443, scheme: HTTPS, path: /hook, body: '{"text":"failed"}'}
`, v1alpha1.BackupHooks{PostBackup: &v1alpha1.PostHook{ExecutionPolicy: v1alpha1.HookOnFailure, HookHandler: v1alpha1.HookHandler{HTTPPost: &v1alpha1.HTTPPostHook{
			Host: "chat.example.com", Port: intstr.FromInt32(443), Scheme: corev1.URISchemeHTTPS, Path: "/hook", Body: `{"text":"failed"}`}}}}},
		{"httpPost with form and OnFinalRetryFailure", `    postBackup:
      executionPolicy: OnFinalRetryFailure
      httpPost: {host: app, port: 80, form: [{key: a, values: [b, c]}]}
`, v1alpha1.BackupHooks{PostBackup: &v1alpha1.PostHook{ExecutionPolicy: v1alpha1.HookOnFinalRetryFailure, HookHandler: v1alpha1.HookHandler{HTTPPost: &v1alpha1.HTTPPostHook{
			Host: "app", Port: intstr.FromInt32(80), Form: []v1alpha1.FormEntry{{Key: "a", Values: []string{"b", "c"}}}}}}}},
		{"tcpSocket", `    postBackup:
      tcpSocket: {host: app, port: 9000}
`, v1alpha1.BackupHooks{PostBackup: &v1alpha1.PostHook{HookHandler: v1alpha1.HookHandler{TCPSocket: &v1alpha1.TCPSocketHook{Host: "app", Port: intstr.FromInt32(9000)}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := runStash(t, stashBC(tc.hooks), "convert", "-f", "-")
			if err != nil {
				t.Fatalf("convert: %v\n%s", err, errOut)
			}
			if strings.Contains(errOut, "hooks") {
				t.Errorf("a warning about hooks: %s", errOut)
			}
			var bc v1alpha1.BackupConfiguration
			if err := sigsyaml.Unmarshal([]byte(out), &bc); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(&tc.want, bc.Spec.Hooks); d != "" {
				t.Errorf("hooks (-want +got):\n%s", d)
			}
		})
	}
}

// TestConvertHookCredential: an inline Authorization header becomes a Secret reference, and
// the token appears nowhere in the output or the warnings.
func TestConvertHookCredential(t *testing.T) {
	doc := stashBC(`    postBackup:
      httpPost:
        host: chat.example.com
        port: 443
        httpHeaders: [{name: Authorization, value: Bearer tok-123}]
`)
	out, errOut, err := runStash(t, doc, "convert", "-f", "-")
	if err != nil {
		t.Fatalf("convert: %v\n%s", err, errOut)
	}
	if strings.Contains(out+errOut, "tok-123") {
		t.Errorf("the token is in the output:\n%s\n%s", out, errOut)
	}
	for _, w := range []string{`it now reads key "authorization" of Secret "nightly-hook-credentials"`, "kubectl create secret generic nightly-hook-credentials -n demo --from-literal=authorization=..."} {
		if !strings.Contains(errOut, w) {
			t.Errorf("warnings lack %q:\n%s", w, errOut)
		}
	}
	if !strings.Contains(out, "secretKeyRef:") {
		t.Errorf("no secretKeyRef:\n%s", out)
	}
}

// TestValidateRefusesHooks: validate gives the webhook's verdict (the API's Validate) on
// hooks, and never echoes an inline credential.
func TestValidateRefusesHooks(t *testing.T) {
	doc := `apiVersion: stash.dev/v1alpha1
kind: BackupConfiguration
metadata: {name: nightly, namespace: demo}
spec:
  schedule: "0 2 * * *"
  timeZone: Mars/Olympus_Mons
  repository: {name: gcs-repo}
  target: {redis: {address: "10.0.0.5:6379"}}
  hooks:
    preBackup:
      exec: {command: [redis-cli, SET, marker, "1"]}
    postBackup:
      executionPolicy: Sometimes
      httpPost: {host: chat, port: 443, httpHeaders: [{name: Authorization, value: Bearer tok-123}]}
`
	out, errOut, err := runStash(t, doc, "validate", "-f", "-")
	if err == nil {
		t.Fatalf("validate accepted it:\n%s", out)
	}
	for _, w := range []string{`spec.timeZone: Invalid value: "Mars/Olympus_Mons": unknown time zone`, "spec.hooks.preBackup.exec: Forbidden",
		`spec.hooks.postBackup.executionPolicy: Unsupported value: "Sometimes"`, `spec.hooks.postBackup.httpPost.httpHeaders[0].value: Forbidden: header "Authorization" carries a credential`} {
		if !strings.Contains(out+errOut, w) {
			t.Errorf("validate lacks %q:\n%s%s", w, out, errOut)
		}
	}
	if strings.Contains(out+errOut, "tok-123") {
		t.Errorf("validate echoes the token:\n%s%s", out, errOut)
	}
}
