package v1alpha1

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func everyHook() *BackupHooks {
	return &BackupHooks{
		PreBackup: &HookHandler{Exec: &corev1.ExecAction{Command: []string{"redis-cli", "SET", "marker", "1"}}, ContainerName: "redis"},
		PostBackup: &PostHook{ExecutionPolicy: HookOnFailure, HookHandler: HookHandler{HTTPPost: &HTTPPostHook{
			Host: "chat.example.com", Port: intstr.FromInt32(443), Scheme: corev1.URISchemeHTTPS, Path: "/hooks/backup", Body: `{"text":"backup failed"}`,
			HTTPHeaders: []HTTPHeader{{Name: "Content-Type", Value: "application/json"},
				{Name: "Authorization", ValueFrom: &HeaderValueSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "chat"}, Key: "token"}}}},
		}}},
	}
}

func TestHooksAndTimeZone(t *testing.T) {
	tests := []struct {
		name   string
		change func(b *BackupConfiguration)
		want   string // a part of the error; empty: valid
	}{
		{"every handler kind", func(b *BackupConfiguration) { b.Spec.Hooks = everyHook() }, ""},
		{"httpGet and tcpSocket", func(b *BackupConfiguration) {
			b.Spec.Hooks = &BackupHooks{PreBackup: &HookHandler{HTTPGet: &HTTPGetHook{Port: intstr.FromInt32(8080), Path: "/quiesce"}},
				PostBackup: &PostHook{HookHandler: HookHandler{TCPSocket: &TCPSocketHook{Port: intstr.FromInt32(6379)}, Timeout: "5s"}, ExecutionPolicy: HookOnFinalRetryFailure}}
		}, ""},
		{"two handlers", func(b *BackupConfiguration) {
			b.Spec.Hooks = everyHook()
			b.Spec.Hooks.PreBackup.TCPSocket = &TCPSocketHook{Port: intstr.FromInt32(1)}
		}, "spec.hooks.preBackup: Invalid value: 2: exactly one of exec"},
		{"no handler", func(b *BackupConfiguration) { b.Spec.Hooks = &BackupHooks{PreBackup: &HookHandler{}} }, "exactly one of"},
		{"unknown policy", func(b *BackupConfiguration) {
			b.Spec.Hooks = everyHook()
			b.Spec.Hooks.PostBackup.ExecutionPolicy = "Sometimes"
		}, `spec.hooks.postBackup.executionPolicy: Unsupported value: "Sometimes"`},
		{"inline credential", func(b *BackupConfiguration) {
			b.Spec.Hooks = everyHook()
			b.Spec.Hooks.PostBackup.HTTPPost.HTTPHeaders[1] = HTTPHeader{Name: "Authorization", Value: "Bearer s3cr3t"}
		}, `spec.hooks.postBackup.httpPost.httpHeaders[1].value: Forbidden: header "Authorization" carries a credential`},
		{"inline api key", func(b *BackupConfiguration) {
			b.Spec.Hooks = everyHook()
			b.Spec.Hooks.PostBackup.HTTPPost.HTTPHeaders[0] = HTTPHeader{Name: "X-Api-Key", Value: "k"}
		}, "carries a credential"},
		{"secret ref without key", func(b *BackupConfiguration) {
			b.Spec.Hooks = everyHook()
			b.Spec.Hooks.PostBackup.HTTPPost.HTTPHeaders[1].ValueFrom.SecretKeyRef.Key = ""
		}, "valueFrom.secretKeyRef: Required value"},
		{"named port", func(b *BackupConfiguration) {
			b.Spec.Hooks = everyHook()
			b.Spec.Hooks.PostBackup.HTTPPost.Port = intstr.FromString("http")
		}, "must be a port number"},
		{"timeout too long", func(b *BackupConfiguration) {
			b.Spec.Hooks = everyHook()
			b.Spec.Hooks.PreBackup.Timeout = "2h"
		}, "spec.hooks.preBackup.timeout"},
		{"exec without command", func(b *BackupConfiguration) {
			b.Spec.Hooks = &BackupHooks{PreBackup: &HookHandler{Exec: &corev1.ExecAction{}}}
		}, "spec.hooks.preBackup.exec.command: Required value"},
		{"exec on an IP address", func(b *BackupConfiguration) {
			b.Spec.Target = Target{Redis: &RedisTarget{Address: "10.0.0.5:6379"}}
			b.Spec.Hooks = everyHook()
		}, "spec.hooks.preBackup.exec: Forbidden: an exec hook runs in a Pod of the target"},
		{"exec on a service address", func(b *BackupConfiguration) {
			b.Spec.Target = inlineTarget()
			b.Spec.Hooks = everyHook()
		}, ""},
		{"containerName without exec", func(b *BackupConfiguration) {
			b.Spec.Hooks = &BackupHooks{PreBackup: &HookHandler{TCPSocket: &TCPSocketHook{Port: intstr.FromInt32(1)}, ContainerName: "redis"}}
		}, "only an exec hook"},
		{"body and form", func(b *BackupConfiguration) {
			b.Spec.Hooks = everyHook()
			b.Spec.Hooks.PostBackup.HTTPPost.Form = []FormEntry{{Key: "a", Values: []string{"b"}}}
		}, "may not be set together with body"},
		{"time zone", func(b *BackupConfiguration) { b.Spec.TimeZone = "Europe/Berlin" }, ""},
		{"unknown time zone", func(b *BackupConfiguration) { b.Spec.TimeZone = "Mars/Olympus_Mons" }, `spec.timeZone: Invalid value: "Mars/Olympus_Mons": unknown time zone`},
		{"local time zone", func(b *BackupConfiguration) { b.Spec.TimeZone = "Local" }, "spec.timeZone"},
		{"TZ in schedule", func(b *BackupConfiguration) { b.Spec.Schedule = "TZ=Europe/Berlin 0 2 * * *" }, "set spec.timeZone"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := backupConfig()
			tc.change(b)
			b.Default()
			errs := b.Validate()
			got := strings.Join(messages(errs), "\n")
			if tc.want == "" && len(errs) > 0 || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if strings.Contains(got, "s3cr3t") {
				t.Errorf("the error echoes the credential: %s", got)
			}
		})
	}
}

func TestRestoreHooksValidate(t *testing.T) {
	r := restoreSession()
	r.Spec.Hooks = &RestoreHooks{PreRestore: &HookHandler{HTTPGet: &HTTPGetHook{Port: intstr.FromInt32(80)}},
		PostRestore: &PostHook{HookHandler: HookHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}, ExecutionPolicy: "Never"}}
	r.Default()
	got := strings.Join(messages(r.Validate()), "\n")
	if !strings.Contains(got, "spec.hooks.postRestore.executionPolicy") || strings.Count(got, "\n") != 0 {
		t.Errorf("got %q", got)
	}
	if r.Spec.Hooks.PreRestore.Timeout != DefaultHookTimeout {
		t.Errorf("timeout not defaulted: %q", r.Spec.Hooks.PreRestore.Timeout)
	}
}

func TestShouldRun(t *testing.T) {
	type outcome struct{ failed, final bool }
	runs := map[HookExecutionPolicy][]outcome{
		HookAlways:              {{false, false}, {true, false}, {true, true}},
		"":                      {{false, false}, {true, false}, {true, true}},
		HookOnSuccess:           {{false, false}},
		HookOnFailure:           {{true, false}, {true, true}},
		HookOnFinalRetryFailure: {{true, true}},
	}
	for p, want := range runs {
		for _, o := range []outcome{{false, false}, {true, false}, {true, true}} {
			expect := false
			for _, w := range want {
				expect = expect || w == o
			}
			if got := p.ShouldRun(o.failed, o.final); got != expect {
				t.Errorf("%q.ShouldRun(failed=%v, final=%v) = %v", p, o.failed, o.final, got)
			}
		}
	}
}

func TestServiceOfAddress(t *testing.T) {
	for addr, want := range map[string]string{"redis:6379": "redis", "redis.db:6379": "redis", "redis.db.svc.cluster.local:6379": "redis",
		"10.0.0.5:6379": "", "/run/redis.sock": "", "redis.example.com:6379": "", "[::1]:6379": ""} {
		if got, _ := ServiceOfAddress(addr); got != want {
			t.Errorf("ServiceOfAddress(%q) = %q, want %q", addr, got, want)
		}
	}
}
