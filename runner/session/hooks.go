package session

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/hook"
)

// HookOptions are what the hooks of a session need besides the session.
type HookOptions struct {
	// Pod is the target's Pod that exec hooks run in, as the controller chose it.
	Pod string
	// Exec runs exec hooks (hook.PodExec in a cluster); nil refuses them.
	Exec hook.Executor
	// HTTPClient sends HTTP hooks; nil means hook.Runner's default.
	HTTPClient *http.Client
}

// sessionHooks runs the hooks of one session and keeps the conditions that say how they went.
type sessionHooks struct {
	runner     *hook.Runner
	o          *Options
	conditions []metav1.Condition
}

// newSessionHooks prepares the hooks of a session in ns whose target is t. The target is
// resolved (through the API; Redis is not contacted) only when a hook without a host needs
// its host.
func (o *Options) newSessionHooks(ctx context.Context, c client.Client, ns string, t *v1alpha1.Target, hs []*v1alpha1.HookHandler) *sessionHooks {
	r := &hook.Runner{Namespace: ns, Pod: o.Hooks.Pod, Exec: o.Hooks.Exec, Log: o.Log, Client: o.Hooks.HTTPClient,
		Secret: func(ctx context.Context, name, key string) ([]byte, error) {
			s, err := readSecret(ctx, c, ns, name, "hook header")
			if err != nil {
				return nil, err
			}
			v, ok := s.Data[key]
			if !ok {
				return nil, fmt.Errorf("hook header: Secret %s/%s has no key %q", ns, name, key)
			}
			return v, nil
		}}
	if needsDefaultHost(hs) {
		if target, err := ResolveTarget(ctx, c, ns, t); err == nil {
			r.DefaultHost = hostOf(target.Redis.Addr)
		}
	}
	return &sessionHooks{runner: r, o: o}
}

// needsDefaultHost says whether an HTTP or TCP hook of hs has no host of its own.
func needsDefaultHost(hs []*v1alpha1.HookHandler) bool {
	for _, h := range hs {
		switch {
		case h.HTTPGet != nil && h.HTTPGet.Host == "", h.HTTPPost != nil && h.HTTPPost.Host == "", h.TCPSocket != nil && h.TCPSocket.Host == "":
			return true
		}
	}
	return false
}

// pre runs a pre hook (nil: nothing to run) and records its condition. Its error fails the
// session before anything is read from or written to the target.
func (s *sessionHooks) pre(ctx context.Context, name, condition string, h *v1alpha1.HookHandler) error {
	if h == nil {
		return nil
	}
	if err := s.run(ctx, name, condition, h); err != nil {
		return fmt.Errorf("%s hook failed, so nothing was done: %w", name, err)
	}
	return nil
}

// post runs a post hook as its execution policy says for a session that failed (or not),
// final saying that no retry follows, and records its condition. Its failure is a condition
// of the session, never its phase.
func (s *sessionHooks) post(ctx context.Context, name, condition string, h *v1alpha1.PostHook, failed, final bool) {
	if h == nil {
		return
	}
	if !h.ExecutionPolicy.ShouldRun(failed, final) {
		outcome := "succeeded"
		if failed {
			outcome = "failed"
			if !final {
				outcome = "failed and will be retried"
			}
		}
		msg := fmt.Sprintf("not run: executionPolicy %s and the session %s", orDefault(string(h.ExecutionPolicy), string(v1alpha1.HookAlways)), outcome)
		s.o.log("%s hook %s", name, msg)
		s.conditions = append(s.conditions, metav1.Condition{Type: condition, Status: metav1.ConditionUnknown, Reason: "Skipped", Message: msg})
		return
	}
	_ = s.run(ctx, name, condition, &h.HookHandler)
}

func (s *sessionHooks) run(ctx context.Context, name, condition string, h *v1alpha1.HookHandler) error {
	what := hook.Describe(h)
	s.o.log("%s hook: %s", name, what)
	start := s.o.now()
	err := s.runner.Run(ctx, h)
	took := s.o.now().Sub(start).Round(time.Millisecond)
	if err != nil {
		s.o.log("%s hook failed after %s: %v", name, took, err)
		s.conditions = append(s.conditions, metav1.Condition{Type: condition, Status: metav1.ConditionFalse, Reason: "Failed", Message: err.Error()})
		return err
	}
	s.o.log("%s hook succeeded in %s", name, took)
	s.conditions = append(s.conditions, metav1.Condition{Type: condition, Status: metav1.ConditionTrue, Reason: "Succeeded",
		Message: fmt.Sprintf("%s succeeded in %s", what, took)})
	return nil
}

// apply sets the hooks' conditions in conds.
func (s *sessionHooks) apply(conds *[]metav1.Condition) {
	if s == nil {
		return
	}
	for _, c := range s.conditions {
		meta.SetStatusCondition(conds, c)
	}
}

// postBackup runs the postBackup hook of a backup that ended with err, and says whether that
// end is final: it succeeded, or it failed and the Job retries no more (status.retried has
// reached retryConfig.maxRetry). A Pod that died without writing its result is not counted,
// so after such a death a later failure may be taken for an earlier one.
func (out *backupOutcome) postBackup(ctx context.Context, s *v1alpha1.BackupSession, err error) (final bool) {
	final = err == nil
	if out.bc != nil {
		maxRetry := int32(0)
		if rc := out.bc.Spec.RetryConfig; rc != nil {
			maxRetry = rc.MaxRetry
		}
		final = final || s.Status.Retried >= maxRetry
	}
	if out.hooks != nil && out.bc.Spec.Hooks.PostBackup != nil {
		out.hooks.post(ctx, "postBackup", v1alpha1.ConditionPostBackupHookSucceeded, out.bc.Spec.Hooks.PostBackup, err != nil, final)
	}
	return final
}

// preRestore runs the preRestore hook of rs, if any.
func (s *sessionHooks) preRestore(ctx context.Context, rs *v1alpha1.RestoreSession) error {
	if s == nil {
		return nil
	}
	return s.pre(ctx, "preRestore", v1alpha1.ConditionPreRestoreHookSucceeded, rs.Spec.Hooks.PreRestore)
}
