package jobs

import (
	batchv1 "k8s.io/api/batch/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// WithHookPod tells the runner of job which Pod of the target its exec hooks run in: the
// Pod that RunnerRole's HookExecRules let it exec into. An empty pod leaves job as it is.
func WithHookPod(job *batchv1.Job, pod string) *batchv1.Job {
	if pod != "" {
		c := &job.Spec.Template.Spec.Containers[0]
		c.Args = append(c.Args, "--hook-pod", pod)
	}
	return job
}

// HookExecRules are the rules that let the runner run exec hooks in pods, and in no other
// Pod: get (the API server reads the Pod to exec) and create on pods/exec, both by name.
// No pods means no rule: a namespace without exec hooks grants no exec at all.
func HookExecRules(pods []string) []rbacv1.PolicyRule {
	if len(pods) == 0 {
		return nil
	}
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}, ResourceNames: pods},
		{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"create", "get"}, ResourceNames: pods},
	}
}
