package v1alpha1

import (
	"fmt"
	"net/textproto"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Bounds of a hook's timeout: a hook holds the session (and, before a backup, the target's
// writers) while it runs.
const (
	minHookTimeout = time.Second
	maxHookTimeout = 30 * time.Minute
)

func (h *BackupHooks) validate(t *Target, p *field.Path) field.ErrorList {
	if h == nil {
		return nil
	}
	var errs field.ErrorList
	if h.PreBackup != nil {
		errs = append(errs, h.PreBackup.validate(t, p.Child("preBackup"))...)
	}
	if h.PostBackup != nil {
		errs = append(errs, h.PostBackup.validate(t, p.Child("postBackup"))...)
	}
	return errs
}

func (h *RestoreHooks) validate(t *Target, p *field.Path) field.ErrorList {
	if h == nil {
		return nil
	}
	var errs field.ErrorList
	if h.PreRestore != nil {
		errs = append(errs, h.PreRestore.validate(t, p.Child("preRestore"))...)
	}
	if h.PostRestore != nil {
		errs = append(errs, h.PostRestore.validate(t, p.Child("postRestore"))...)
	}
	return errs
}

func (h *PostHook) validate(t *Target, p *field.Path) field.ErrorList {
	errs := h.HookHandler.validate(t, p)
	switch h.ExecutionPolicy {
	case "", HookAlways, HookOnSuccess, HookOnFailure, HookOnFinalRetryFailure:
	default:
		errs = append(errs, field.NotSupported(p.Child("executionPolicy"), h.ExecutionPolicy, HookExecutionPolicies))
	}
	return errs
}

func (h *HookHandler) validate(t *Target, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	set := 0
	for _, isSet := range []bool{h.Exec != nil, h.HTTPGet != nil, h.HTTPPost != nil, h.TCPSocket != nil} {
		if isSet {
			set++
		}
	}
	if set != 1 {
		errs = append(errs, field.Invalid(p, set, "exactly one of exec, httpGet, httpPost and tcpSocket must be set"))
	}
	if h.Timeout != "" {
		d, err := time.ParseDuration(h.Timeout)
		if err != nil || d < minHookTimeout || d > maxHookTimeout {
			errs = append(errs, field.Invalid(p.Child("timeout"), h.Timeout,
				fmt.Sprintf("must be a duration from %s to %s, such as \"30s\"", minHookTimeout, maxHookTimeout)))
		}
	}
	switch {
	case h.Exec != nil:
		if len(h.Exec.Command) == 0 {
			errs = append(errs, field.Required(p.Child("exec", "command"), "the command to run in the target's Pod"))
		}
		errs = append(errs, execTarget(t, p.Child("exec"))...)
	case h.HTTPGet != nil:
		g := h.HTTPGet
		errs = append(errs, validateHookEndpoint(g.Port, g.Scheme, g.Path, p.Child("httpGet"))...)
		errs = append(errs, validateHeaders(g.HTTPHeaders, p.Child("httpGet", "httpHeaders"))...)
	case h.HTTPPost != nil:
		hp := h.HTTPPost
		errs = append(errs, validateHookEndpoint(hp.Port, hp.Scheme, hp.Path, p.Child("httpPost"))...)
		errs = append(errs, validateHeaders(hp.HTTPHeaders, p.Child("httpPost", "httpHeaders"))...)
		if hp.Body != "" && len(hp.Form) > 0 {
			errs = append(errs, field.Forbidden(p.Child("httpPost", "form"), "may not be set together with body"))
		}
	case h.TCPSocket != nil:
		errs = append(errs, validateHookPort(h.TCPSocket.Port, p.Child("tcpSocket", "port"))...)
	}
	if h.ContainerName != "" && h.Exec == nil {
		errs = append(errs, field.Forbidden(p.Child("containerName"), "only an exec hook runs in a container"))
	}
	return errs
}

// execTarget refuses an exec hook whose target has no Pods to find: the runner finds the Pod
// through a Service (the target's, or its AppBinding's), which an address may not name.
func execTarget(t *Target, p *field.Path) field.ErrorList {
	if t == nil || t.Ref != nil {
		return nil
	}
	if r := t.Redis; r != nil && r.Service == nil {
		if _, ok := ServiceOfAddress(r.Address); !ok {
			return field.ErrorList{field.Forbidden(p, "an exec hook runs in a Pod of the target, found through its Service: "+
				"give the target as target.redis.service or target.ref, or an address whose host is a Service name (NAME or NAME.NAMESPACE.svc)")}
		}
	}
	return nil
}

// ServiceOfAddress is the Service name of an in-cluster address "NAME:PORT",
// "NAME.NAMESPACE:PORT" or "NAME.NAMESPACE.svc[.cluster.local]:PORT", and whether it names one.
func ServiceOfAddress(addr string) (string, bool) {
	if addr == "" || strings.HasPrefix(addr, "/") {
		return "", false
	}
	host := addr
	if i := strings.LastIndex(addr, ":"); i > 0 {
		host = addr[:i]
	}
	labels := strings.Split(host, ".")
	if len(labels) > 2 && labels[2] != "svc" {
		return "", false
	}
	for _, l := range labels {
		if len(validation.IsDNS1123Label(l)) > 0 || strings.Trim(l, "0123456789") == "" { // an IP address, not a name
			return "", false
		}
	}
	return labels[0], true
}

func validateHookEndpoint(port intstr.IntOrString, scheme corev1.URIScheme, path string, p *field.Path) field.ErrorList {
	errs := validateHookPort(port, p.Child("port"))
	switch scheme {
	case "", corev1.URISchemeHTTP, corev1.URISchemeHTTPS:
	default:
		errs = append(errs, field.NotSupported(p.Child("scheme"), scheme, []corev1.URIScheme{corev1.URISchemeHTTP, corev1.URISchemeHTTPS}))
	}
	if path != "" && !strings.HasPrefix(path, "/") {
		errs = append(errs, field.Invalid(p.Child("path"), path, `must start with "/"`))
	}
	return errs
}

func validateHookPort(port intstr.IntOrString, p *field.Path) field.ErrorList {
	if port.Type == intstr.String {
		return field.ErrorList{field.Invalid(p, port.StrVal, "must be a port number: the runner does not resolve names of container ports")}
	}
	if port.IntVal < 1 || port.IntVal > 65535 {
		return field.ErrorList{field.Invalid(p, port.IntVal, "must be from 1 to 65535")}
	}
	return nil
}

// CredentialHeader says whether a header by this name carries a credential, which must come
// from a Secret and never sit in the object (where anyone who can read it sees it).
func CredentialHeader(name string) bool {
	n := strings.ToLower(name)
	switch textproto.CanonicalMIMEHeaderKey(name) {
	case "Authorization", "Proxy-Authorization", "Cookie":
		return true
	}
	for _, word := range []string{"token", "secret", "key", "password", "auth", "signature"} {
		if strings.Contains(n, word) {
			return true
		}
	}
	return false
}

func validateHeaders(hs []HTTPHeader, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, h := range hs {
		hp := p.Index(i)
		if h.Name == "" {
			errs = append(errs, field.Required(hp.Child("name"), ""))
		}
		switch {
		case h.ValueFrom != nil && h.Value != "":
			errs = append(errs, field.Forbidden(hp.Child("value"), "may not be set together with valueFrom"))
		case h.ValueFrom != nil:
			ref := h.ValueFrom.SecretKeyRef
			if ref == nil || ref.Name == "" || ref.Key == "" {
				errs = append(errs, field.Required(hp.Child("valueFrom", "secretKeyRef"), "the name and key of a Secret in the namespace"))
			}
		case h.Value != "" && CredentialHeader(h.Name):
			// The value is not echoed: it is the credential.
			errs = append(errs, field.Forbidden(hp.Child("value"), fmt.Sprintf(
				"header %q carries a credential: put it in a Secret and use valueFrom.secretKeyRef (e.g. kubectl create secret generic hook-token --from-literal=token=...)", h.Name)))
		}
	}
	return errs
}

// validateTimeZone checks an IANA time zone name against the time zone database (embedded
// in the binaries, so that `kubectl stash validate` answers on a machine without one).
func validateTimeZone(tz string, p *field.Path) field.ErrorList {
	if tz == "" {
		return nil
	}
	if tz == "Local" {
		return field.ErrorList{field.Invalid(p, tz, `must be an IANA time zone name such as "Europe/Berlin" or "UTC"`)}
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return field.ErrorList{field.Invalid(p, tz, `unknown time zone: must be an IANA time zone name such as "Europe/Berlin" or "UTC"`)}
	}
	return nil
}
