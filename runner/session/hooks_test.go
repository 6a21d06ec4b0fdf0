package session_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/session"
	"stash.dev/redis/test/testproc"
)

// localExec runs a hook's command as a local process.
type localExec struct{}

func (localExec) Exec(ctx context.Context, _, _, _ string, command []string, stdout, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	return cmd.Run()
}

// TestOnFinalRetryFailure: with retryConfig.maxRetry 1, the first failed attempt counts a
// retry and skips an OnFinalRetryFailure hook; the second, the last, runs it. A failing
// preBackup hook fails each attempt before the repository or the target is opened (neither
// exists here).
func TestOnFinalRetryFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	bc := &v1alpha1.BackupConfiguration{ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "nightly"}, Spec: v1alpha1.BackupConfigurationSpec{
		Repository: v1alpha1.RepositoryRef{Name: "missing"}, Target: v1alpha1.Target{Redis: &v1alpha1.RedisTarget{Service: &v1alpha1.ServiceTarget{Name: "redis"}}},
		RetryConfig: &v1alpha1.RetryConfig{MaxRetry: 1},
		Hooks: &v1alpha1.BackupHooks{
			PreBackup: &v1alpha1.HookHandler{Exec: &corev1.ExecAction{Command: []string{"false"}}},
			PostBackup: &v1alpha1.PostHook{ExecutionPolicy: v1alpha1.HookOnFinalRetryFailure, HookHandler: v1alpha1.HookHandler{
				TCPSocket: &v1alpha1.TCPSocketHook{Host: "127.0.0.1", Port: intstr.FromInt(ln.Addr().(*net.TCPAddr).Port)}}},
		},
	}}
	bs := &v1alpha1.BackupSession{ObjectMeta: metav1.ObjectMeta{Namespace: "db", Name: "nightly-1"}, Spec: v1alpha1.BackupSessionSpec{Invoker: v1alpha1.BackupInvokerRef{Name: "nightly"}}}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(bc, bs).WithStatusSubresource(bs).Build()
	o := session.Options{Hooks: session.HookOptions{Pod: "redis-0", Exec: localExec{}}}
	attempt := func() *v1alpha1.BackupSession {
		t.Helper()
		if err := session.RunBackup(context.Background(), c, "db", "nightly-1", o); err == nil || !strings.Contains(err.Error(), "preBackup hook failed") {
			t.Fatalf("attempt: %v", err)
		}
		got := &v1alpha1.BackupSession{}
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(bs), got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	first := attempt()
	post := meta.FindStatusCondition(first.Status.Conditions, v1alpha1.ConditionPostBackupHookSucceeded)
	if first.Status.Retried != 1 || accepted.Load() != 0 || post == nil || post.Reason != "Skipped" || !strings.Contains(post.Message, "will be retried") {
		t.Errorf("first attempt: retried %d, hook connections %d, condition %+v", first.Status.Retried, accepted.Load(), post)
	}
	if !meta.IsStatusConditionFalse(first.Status.Conditions, v1alpha1.ConditionPreBackupHookSucceeded) || !strings.Contains(first.Status.Error, `exec "false" in pod redis-0: exit code 1`) {
		t.Errorf("first attempt: %+v", first.Status)
	}
	last := attempt()
	if last.Status.Retried != 1 || !meta.IsStatusConditionTrue(last.Status.Conditions, v1alpha1.ConditionPostBackupHookSucceeded) {
		t.Errorf("last attempt: retried %d, conditions %+v", last.Status.Retried, last.Status.Conditions)
	}
	// The hook's connection is accepted by the listener's goroutine, maybe after the hook ended.
	testproc.Eventually(t, 5*time.Second, "the hook's connection is accepted", func() error {
		if n := accepted.Load(); n != 1 {
			return fmt.Errorf("%d connections", n)
		}
		return nil
	})
}
