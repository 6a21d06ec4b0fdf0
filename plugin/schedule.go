package plugin

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"k8s.io/apimachinery/pkg/util/duration"

	"stash.dev/redis/api/v1alpha1"
)

// nextRun says when the schedule of bc next fires, in its time zone (UTC without one, as
// most controller managers run), e.g. "2026-12-08 02:00 CET (Europe/Berlin), in 9h".
func nextRun(bc *v1alpha1.BackupConfiguration, now time.Time) string {
	if bc.Spec.Paused {
		return "- (paused)"
	}
	sched, err := cron.ParseStandard(bc.Spec.Schedule)
	if err != nil {
		return "- (invalid schedule)"
	}
	zone := bc.Spec.TimeZone
	if zone == "" {
		zone = "UTC"
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return fmt.Sprintf("- (unknown time zone %q)", zone)
	}
	next := sched.Next(now.In(loc))
	return fmt.Sprintf("%s (%s), in %s", next.Format("2006-01-02 15:04 MST"), zone, duration.HumanDuration(next.Sub(now)))
}

// describeHooks lists a configuration's or session's hooks, one line each: when, what,
// where and the policy; never a header's value or a body.
func describeHooks(pre *v1alpha1.HookHandler, preName string, post *v1alpha1.PostHook, postName string) []string {
	var out []string
	if pre != nil {
		out = append(out, fmt.Sprintf("%s: %s", preName, describeHandler(pre)))
	}
	if post != nil {
		policy := post.ExecutionPolicy
		if policy == "" {
			policy = v1alpha1.HookAlways
		}
		out = append(out, fmt.Sprintf("%s: %s (%s)", postName, describeHandler(&post.HookHandler), policy))
	}
	return out
}

func describeHandler(h *v1alpha1.HookHandler) string {
	var what string
	switch {
	case h.Exec != nil:
		what = "exec " + strings.Join(h.Exec.Command, " ")
		if h.ContainerName != "" {
			what += " in container " + h.ContainerName
		}
	case h.HTTPGet != nil:
		what = fmt.Sprintf("httpGet %s:%s%s", orTarget(h.HTTPGet.Host), h.HTTPGet.Port.String(), h.HTTPGet.Path)
	case h.HTTPPost != nil:
		what = fmt.Sprintf("httpPost %s:%s%s", orTarget(h.HTTPPost.Host), h.HTTPPost.Port.String(), h.HTTPPost.Path)
	case h.TCPSocket != nil:
		what = fmt.Sprintf("tcpSocket %s:%s", orTarget(h.TCPSocket.Host), h.TCPSocket.Port.String())
	}
	if h.Timeout != "" {
		what += ", timeout " + h.Timeout
	}
	return what
}

func orTarget(host string) string {
	if host == "" {
		return "(target)"
	}
	return host
}
