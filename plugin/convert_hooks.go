package plugin

import (
	"fmt"
	"sort"
	"strings"

	"stash.dev/redis/api/v1alpha1"
)

// hooks keeps Stash's spec.hooks (same field names), except that a header carrying a
// credential inline becomes a reference to a Secret: stash.dev refuses credentials in the
// object. The value is dropped, never printed: the warning says which Secret to create.
func (c *converter) hooks(spec map[string]any, name, namespace string) {
	hooks, ok := spec["hooks"].(map[string]any)
	if !ok {
		return
	}
	secret := name + "-hook-credentials"
	var keys []string
	for _, when := range sortedKeys(hooks) {
		h, _ := hooks[when].(map[string]any)
		for _, kind := range []string{"httpGet", "httpPost"} {
			action, _ := h[kind].(map[string]any)
			headers, _ := action["httpHeaders"].([]any)
			for i, item := range headers {
				hd, _ := item.(map[string]any)
				hname, _ := hd["name"].(string)
				if _, inline := hd["value"].(string); !inline || !v1alpha1.CredentialHeader(hname) {
					continue
				}
				key := strings.ToLower(hname)
				delete(hd, "value")
				hd["valueFrom"] = map[string]any{"secretKeyRef": map[string]any{"name": secret, "key": key}}
				keys = append(keys, key)
				c.warnings = append(c.warnings, fmt.Sprintf("spec.hooks.%s.%s.httpHeaders[%d] %q held a credential inline: it now reads key %q of Secret %q, which you create", when, kind, i, hname, key, secret))
			}
		}
	}
	if len(keys) > 0 {
		var lit []string
		for _, k := range keys {
			lit = append(lit, "--from-literal="+k+"=...")
		}
		c.warnings = append(c.warnings, fmt.Sprintf("create it with: kubectl create secret generic %s -n %s %s", secret, namespace, strings.Join(lit, " ")))
	}
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
