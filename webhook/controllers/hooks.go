package controllers

import (
	"context"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stash.dev/redis/api/v1alpha1"
)

// Exec hooks run in a Pod of the target. The controller, not the runner, finds that Pod (the
// Pods that the target's Service selects), so that the runner needs no right to list Pods or
// read Services: its Role lets it exec into exactly the Pods found here, and only while some
// BackupConfiguration or RestoreSession of the namespace has an exec hook.

// ClientCacheOptions keep Pods and Services out of the manager's cache: the controller reads
// the few it needs for exec hooks straight from the API server, where a cache would hold every
// Pod and Service of the cluster. Pass them as the manager's Client.Cache.
func ClientCacheOptions() *client.CacheOptions {
	return &client.CacheOptions{DisableFor: []client.Object{&corev1.Pod{}, &corev1.Service{}}}
}

// targetService is the name of the Service in front of t: target.redis.service, the Service
// that an in-cluster address names, or the AppBinding's clientConfig.service.
func targetService(ctx context.Context, c client.Reader, ns string, t *v1alpha1.Target) (string, error) {
	switch {
	case t.Redis != nil && t.Redis.Service != nil:
		return t.Redis.Service.Name, nil
	case t.Redis != nil:
		if name, ok := v1alpha1.ServiceOfAddress(t.Redis.Address); ok {
			return name, nil
		}
		return "", fmt.Errorf("target address %q names no Service", t.Redis.Address)
	case t.Ref != nil:
		ab := &unstructured.Unstructured{}
		ab.SetAPIVersion(v1alpha1.AppBindingAPIVersion)
		ab.SetKind(v1alpha1.AppBindingKind)
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: t.Ref.Name}, ab); err != nil {
			return "", fmt.Errorf("read AppBinding %s/%s: %w", ns, t.Ref.Name, err)
		}
		name, _, _ := unstructured.NestedString(ab.Object, "spec", "clientConfig", "service", "name")
		if name == "" {
			return "", fmt.Errorf("AppBinding %s/%s has no clientConfig.service", ns, t.Ref.Name)
		}
		return name, nil
	}
	return "", fmt.Errorf("the target has no Service")
}

// targetPods are the running Pods behind the target's Service, ready ones first, each group
// by name: the first is where an exec hook runs.
func targetPods(ctx context.Context, c client.Reader, ns string, t *v1alpha1.Target) ([]string, error) {
	name, err := targetService(ctx, c, ns, t)
	if err != nil {
		return nil, err
	}
	svc := &corev1.Service{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, svc); err != nil {
		return nil, fmt.Errorf("read Service %s/%s: %w", ns, name, err)
	}
	if len(svc.Spec.Selector) == 0 {
		return nil, fmt.Errorf("Service %s/%s has no selector: no Pod to run an exec hook in", ns, name)
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabelsSelector{Selector: labels.SelectorFromSet(svc.Spec.Selector)}); err != nil {
		return nil, fmt.Errorf("list Pods of Service %s/%s: %w", ns, name, err)
	}
	var ready, other []string
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		if podReady(&p) {
			ready = append(ready, p.Name)
		} else {
			other = append(other, p.Name)
		}
	}
	sort.Strings(ready)
	sort.Strings(other)
	return append(ready, other...), nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// hookPod is the Pod that the exec hooks among hs run in (empty when there are none): the
// first of targetPods. When there is none, the runner is started anyway and its exec hook
// fails with the reason, as the session's condition and error say.
func hookPod(ctx context.Context, c client.Reader, ns string, t *v1alpha1.Target, hs []*v1alpha1.HookHandler) string {
	if !v1alpha1.NeedPod(hs) {
		return ""
	}
	pods, err := targetPods(ctx, c, ns, t)
	if err != nil || len(pods) == 0 {
		return ""
	}
	return pods[0]
}

// hookNeeds adds what the hooks hs of a configuration or session in ns with target t need:
// the Secrets their headers read and the Pods their exec hooks may run in. A target whose
// Pods cannot be found grants no Pod; its exec hook then fails at run time with the reason.
func hookNeeds(ctx context.Context, c client.Reader, ns string, t *v1alpha1.Target, hs []*v1alpha1.HookHandler, secrets, pods *[]string) {
	*secrets = append(*secrets, v1alpha1.HeaderSecrets(hs)...)
	if !v1alpha1.NeedPod(hs) {
		return
	}
	if found, err := targetPods(ctx, c, ns, t); err == nil {
		*pods = append(*pods, found...)
	}
}
