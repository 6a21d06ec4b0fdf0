package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// BackupHooks run around a backup, with Stash's field names (spec.hooks of its
// BackupConfiguration), so that `kubectl stash convert` carries them over unchanged. The
// backup Job's runner runs them: an exec hook in a Pod of the target, the others from the
// runner's Pod.
type BackupHooks struct {
	// PreBackup runs before anything is read from the target. If it fails (or times out),
	// the session fails and nothing is backed up.
	// +optional
	PreBackup *HookHandler `json:"preBackup,omitempty"`
	// PostBackup runs after the backup, as its executionPolicy says. A failed postBackup
	// hook marks the session (condition PostBackupHookExecutionSucceeded false) but keeps its
	// snapshot and its phase.
	// +optional
	PostBackup *PostHook `json:"postBackup,omitempty"`
}

// RestoreHooks run around a restore, with Stash's field names (spec.hooks of its
// RestoreSession).
type RestoreHooks struct {
	// PreRestore runs before anything is written to the target (to quiesce or scale down
	// what writes to it). If it fails, the session fails and the target is left alone.
	// +optional
	PreRestore *HookHandler `json:"preRestore,omitempty"`
	// PostRestore runs after the restore, as its executionPolicy says (to warm caches or
	// scale the writers back up).
	// +optional
	PostRestore *PostHook `json:"postRestore,omitempty"`
}

// HookExecutionPolicy says when a post hook runs.
// +kubebuilder:validation:Enum=Always;OnSuccess;OnFailure;OnFinalRetryFailure
type HookExecutionPolicy string

// Execution policies of post hooks (Stash's).
const (
	// HookAlways runs the hook whatever the outcome (the default).
	HookAlways HookExecutionPolicy = "Always"
	// HookOnSuccess runs the hook only after a successful session.
	HookOnSuccess HookExecutionPolicy = "OnSuccess"
	// HookOnFailure runs the hook after every failed attempt.
	HookOnFailure HookExecutionPolicy = "OnFailure"
	// HookOnFinalRetryFailure runs the hook only when the last retry of retryConfig has
	// failed too: once per failed session. A restore is never retried, so there it is
	// OnFailure.
	HookOnFinalRetryFailure HookExecutionPolicy = "OnFinalRetryFailure"
)

// HookExecutionPolicies are the accepted policies, for messages.
var HookExecutionPolicies = []HookExecutionPolicy{HookAlways, HookOnSuccess, HookOnFailure, HookOnFinalRetryFailure}

// PostHook is a hook that runs after a session, as its executionPolicy says.
type PostHook struct {
	HookHandler `json:",inline"`
	// ExecutionPolicy is Always (default), OnSuccess, OnFailure or OnFinalRetryFailure.
	// +optional
	ExecutionPolicy HookExecutionPolicy `json:"executionPolicy,omitempty"`
}

// HookHandler is one action: exactly one of exec, httpGet, httpPost and tcpSocket (the
// shape of Stash's prober.Handler).
type HookHandler struct {
	// Exec runs a command in a container of a Pod of the target (the Pods that the target's
	// Service or AppBinding's Service selects; the first ready one by name). The runner may
	// exec into those Pods only, and only while some hook in the namespace needs it.
	// +optional
	Exec *corev1.ExecAction `json:"exec,omitempty"`
	// HTTPGet sends a GET request from the runner's Pod.
	// +optional
	HTTPGet *HTTPGetHook `json:"httpGet,omitempty"`
	// HTTPPost sends a POST request from the runner's Pod.
	// +optional
	HTTPPost *HTTPPostHook `json:"httpPost,omitempty"`
	// TCPSocket opens (and closes) a TCP connection from the runner's Pod.
	// +optional
	TCPSocket *TCPSocketHook `json:"tcpSocket,omitempty"`
	// ContainerName is the container an exec hook runs in; empty means the Pod's default
	// container.
	// +optional
	ContainerName string `json:"containerName,omitempty"`
	// Timeout bounds the hook, as a duration. Defaults to 30s. A hook that runs longer fails.
	// +optional
	Timeout string `json:"timeout,omitempty"`
}

// HTTPGetHook is an HTTP GET request.
type HTTPGetHook struct {
	// Path of the request.
	// +optional
	Path string `json:"path,omitempty"`
	// Port to connect to: a number (names of container ports are not resolved).
	Port intstr.IntOrString `json:"port"`
	// Host to connect to. Defaults to the host of the target's Redis (its Service).
	// +optional
	Host string `json:"host,omitempty"`
	// Scheme is HTTP (default) or HTTPS. HTTPS certificates are verified with the runner
	// image's roots.
	// +optional
	Scheme corev1.URIScheme `json:"scheme,omitempty"`
	// HTTPHeaders are sent with the request. A header that carries a credential
	// (Authorization, a token, a key) must take it from a Secret: valueFrom.secretKeyRef.
	// +optional
	HTTPHeaders []HTTPHeader `json:"httpHeaders,omitempty"`
}

// HTTPPostHook is an HTTP POST request.
type HTTPPostHook struct {
	// Path of the request.
	// +optional
	Path string `json:"path,omitempty"`
	// Port to connect to: a number (names of container ports are not resolved).
	Port intstr.IntOrString `json:"port"`
	// Host to connect to. Defaults to the host of the target's Redis (its Service).
	// +optional
	Host string `json:"host,omitempty"`
	// Scheme is HTTP (default) or HTTPS. HTTPS certificates are verified with the runner
	// image's roots.
	// +optional
	Scheme corev1.URIScheme `json:"scheme,omitempty"`
	// HTTPHeaders are sent with the request. A header that carries a credential
	// (Authorization, a token, a key) must take it from a Secret: valueFrom.secretKeyRef.
	// +optional
	HTTPHeaders []HTTPHeader `json:"httpHeaders,omitempty"`
	// Body of the request. Not with form.
	// +optional
	Body string `json:"body,omitempty"`
	// Form is sent as an application/x-www-form-urlencoded body. Not with body.
	// +optional
	Form []FormEntry `json:"form,omitempty"`
}

// FormEntry is one key of a form body and its values.
type FormEntry struct {
	Key    string   `json:"key,omitempty"`
	Values []string `json:"values,omitempty"`
}

// HTTPHeader is a header of a hook's request: a value inline, or a value from a Secret.
type HTTPHeader struct {
	// Name of the header.
	Name string `json:"name"`
	// Value of the header, inline. Not for credentials: use valueFrom.
	// +optional
	Value string `json:"value,omitempty"`
	// ValueFrom reads the value from a key of a Secret in the session's namespace; the
	// runner may read exactly that Secret, and the value never appears in status, events
	// or logs.
	// +optional
	ValueFrom *HeaderValueSource `json:"valueFrom,omitempty"`
}

// HeaderValueSource is where a header's value comes from.
type HeaderValueSource struct {
	// SecretKeyRef is a key of a Secret in the session's namespace.
	SecretKeyRef *corev1.SecretKeySelector `json:"secretKeyRef,omitempty"`
}

// TCPSocketHook opens a TCP connection: the hook succeeds when it connects.
type TCPSocketHook struct {
	// Port to connect to: a number.
	Port intstr.IntOrString `json:"port"`
	// Host to connect to. Defaults to the host of the target's Redis (its Service).
	// +optional
	Host string `json:"host,omitempty"`
}

// Condition types that say how the hooks of a session went (Stash's names). True: the hook
// ran and succeeded; False: it failed or timed out (the message says which); Unknown with
// reason Skipped: its executionPolicy kept it from running.
const (
	ConditionPreBackupHookSucceeded   = "PreBackupHookExecutionSucceeded"
	ConditionPostBackupHookSucceeded  = "PostBackupHookExecutionSucceeded"
	ConditionPreRestoreHookSucceeded  = "PreRestoreHookExecutionSucceeded"
	ConditionPostRestoreHookSucceeded = "PostRestoreHookExecutionSucceeded"
)

// DefaultHookTimeout bounds a hook without a timeout.
const DefaultHookTimeout = "30s"

// ShouldRun says whether a post hook with policy p runs after a session that failed (or
// not), final saying whether no retry follows that failure.
func (p HookExecutionPolicy) ShouldRun(failed, final bool) bool {
	switch p {
	case HookOnSuccess:
		return !failed
	case HookOnFailure:
		return failed
	case HookOnFinalRetryFailure:
		return failed && final
	default:
		return true
	}
}

// NeedsPod says whether the handler runs in a Pod of the target (an exec hook).
func (h *HookHandler) NeedsPod() bool { return h != nil && h.Exec != nil }

// Handlers are the hooks of b, pre before post, nil ones left out.
func (h *BackupHooks) Handlers() []*HookHandler {
	if h == nil {
		return nil
	}
	var out []*HookHandler
	if h.PreBackup != nil {
		out = append(out, h.PreBackup)
	}
	if h.PostBackup != nil {
		out = append(out, &h.PostBackup.HookHandler)
	}
	return out
}

// Handlers are the hooks of r, pre before post, nil ones left out.
func (h *RestoreHooks) Handlers() []*HookHandler {
	if h == nil {
		return nil
	}
	var out []*HookHandler
	if h.PreRestore != nil {
		out = append(out, h.PreRestore)
	}
	if h.PostRestore != nil {
		out = append(out, &h.PostRestore.HookHandler)
	}
	return out
}

// NeedPod says whether any of hs is an exec hook.
func NeedPod(hs []*HookHandler) bool {
	for _, h := range hs {
		if h.NeedsPod() {
			return true
		}
	}
	return false
}

// HeaderSecrets are the names of the Secrets that the headers of hs read.
func HeaderSecrets(hs []*HookHandler) []string {
	var out []string
	for _, h := range hs {
		var headers []HTTPHeader
		switch {
		case h.HTTPGet != nil:
			headers = h.HTTPGet.HTTPHeaders
		case h.HTTPPost != nil:
			headers = h.HTTPPost.HTTPHeaders
		}
		for _, hd := range headers {
			if hd.ValueFrom != nil && hd.ValueFrom.SecretKeyRef != nil {
				out = append(out, hd.ValueFrom.SecretKeyRef.Name)
			}
		}
	}
	return out
}
