package plugin_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// chartDir is the Helm chart, which must render what `kubectl stash install` applies.
var chartDir = filepath.Join(root, "charts", "stash-redis")

// helm runs the helm binary that hack/tools.sh builds and returns its stdout.
func helm(t *testing.T, args ...string) string {
	t.Helper()
	bin := filepath.Join(toolsBin(t, "helm"), "helm")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// objectsByKey decodes a multi-document YAML stream into objects keyed by kind/namespace/name.
func objectsByKey(t *testing.T, what, stream string) map[string]map[string]any {
	t.Helper()
	objs := map[string]map[string]any{}
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(stream), 4096)
	for {
		var u unstructured.Unstructured
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("decode %s: %v", what, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		key := u.GetKind() + "/" + u.GetNamespace() + "/" + u.GetName()
		if _, dup := objs[key]; dup {
			t.Fatalf("%s renders %s twice", what, key)
		}
		objs[key] = u.Object
	}
	return objs
}

func keys(m map[string]map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// TestChartRendersInstallObjects renders the chart with helm and the plugin's install with
// --dry-run=client, for the same settings, and compares every object: the two ways to
// install cannot drift apart.
func TestChartRendersInstallObjects(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.crt")
	writeFile(t, ca, "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n")
	tests := []struct {
		name    string
		install []string
		helm    []string
	}{
		{name: "defaults"},
		{
			name:    "images",
			install: []string{"--image", "reg.example/stash-webhook:v1.2.3", "--runner-image", "reg.example/stash-runner:v1.2.4"},
			helm:    []string{"--set", "image.repository=reg.example/stash-webhook,image.tag=v1.2.3,runner.image.repository=reg.example/stash-runner,runner.image.tag=v1.2.4"},
		},
		{
			name:    "controller outside the cluster",
			install: []string{"--skip-deployment", "--webhook-url", "https://10.0.0.5:9443/", "--ca-bundle-file", ca},
			helm:    []string{"--set", "controller.enabled=false,webhookURL=https://10.0.0.5:9443/", "--set-file", "certificate.caBundle=" + ca},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// The plugin creates stash-system itself; with helm, the release namespace is
			// rendered only when asked (helm install --create-namespace is the usual way).
			chart := objectsByKey(t, "the chart", helm(t, append([]string{"template", "stash-redis", chartDir,
				"--namespace", "stash-system", "--include-crds", "--set", "createNamespace=true"}, tc.helm...)...))
			install := objectsByKey(t, "kubectl stash install", kubectl.Must(t, append([]string{"stash", "install", "--dry-run=client", "-o", "yaml"}, tc.install...)...))
			if diff := cmp.Diff(keys(install), keys(chart)); diff != "" {
				t.Fatalf("objects (-kubectl stash install +chart):\n%s", diff)
			}
			for k, want := range install {
				if diff := cmp.Diff(want, chart[k]); diff != "" {
					t.Errorf("%s (-kubectl stash install +chart):\n%s", k, diff)
				}
			}
		})
	}
}

// monitoringCRDs stand in for prometheus-operator's CRDs, which this test cluster lacks:
// they accept any spec, so the dry run below checks the group, version, kind and
// metadata of the chart's ServiceMonitor and PrometheusRule, not their schema.
const monitoringCRDs = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, plural: servicemonitors}
  scope: Namespaced
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: prometheusrules.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  names: {kind: PrometheusRule, plural: prometheusrules}
  scope: Namespaced
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
`

// TestChartLintAndServerDryRun lints the chart and sends what it renders, every optional
// part switched on, through a server-side dry run of the real API server.
func TestChartLintAndServerDryRun(t *testing.T) {
	all := []string{"--set", strings.Join([]string{
		"metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true", "metrics.dashboard.enabled=true",
		"pushgatewayURL=http://pushgateway.monitoring:9091", "replicas=3",
		"nodeSelector.kubernetes\\.io/os=linux", "tolerations[0].key=dedicated", "tolerations[0].operator=Exists",
		"priorityClassName=system-cluster-critical", "podAnnotations.team=db",
		"certificate.existingSecret=stash-webhook-tls", "webhookAnnotations.cert-manager\\.io/inject-ca-from=stash-helm/stash-webhook",
	}, ",")}
	out := helm(t, append([]string{"lint", "--strict", chartDir}, all...)...)
	if !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
		t.Errorf("helm lint:\n%s", out)
	}
	ns := "stash-helm"
	kubectl.Must(t, "create", "namespace", ns)
	t.Cleanup(func() { _, _ = kubectl.Try(t, "delete", "namespace", ns, "--wait=false") })
	crds := filepath.Join(t.TempDir(), "monitoring-crds.yaml")
	writeFile(t, crds, monitoringCRDs)
	kubectl.Must(t, "apply", "-f", crds)
	kubectl.Must(t, "wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com")

	rendered := helm(t, append([]string{"template", "stash-redis", chartDir, "--namespace", ns}, all...)...)
	for _, want := range []string{"kind: ServiceMonitor", "kind: PrometheusRule", "name: stash-redis-dashboard", "--pushgateway-url=http://pushgateway.monitoring:9091",
		"--disable-cert-rotation", "secretName: stash-webhook-tls", "cert-manager.io/inject-ca-from: stash-helm/stash-webhook"} {
		if !strings.Contains(rendered, want) {
			t.Errorf("rendered chart lacks %q", want)
		}
	}
	if strings.Contains(rendered, "name: stash-webhook-cert") {
		t.Errorf("with certificate.existingSecret the chart still renders the self-managed certificate Secret or its Role")
	}
	file := filepath.Join(t.TempDir(), "chart.yaml")
	writeFile(t, file, rendered)
	out = kubectl.Must(t, "apply", "--dry-run=server", "-f", file)
	for _, want := range []string{"deployment.apps/stash-webhook created (server dry run)", "servicemonitor.monitoring.coreos.com/stash-webhook created (server dry run)",
		"prometheusrule.monitoring.coreos.com/stash-redis created (server dry run)", "validatingwebhookconfiguration.admissionregistration.k8s.io/stash-webhook created (server dry run)"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl apply --dry-run=server lacks %q:\n%s", want, out)
		}
	}
}
