package plugin

import (
	"bytes"
	"testing"
)

// FuzzManifests feeds arbitrary bytes to what `validate` and `convert` do with a file: split it
// into documents, default and validate each as the webhook would, and convert each as a Stash
// object. Whatever the input, they return verdicts or errors; they never panic.
func FuzzManifests(f *testing.F) {
	for _, seed := range []string{
		"apiVersion: stash.dev/v1alpha1\nkind: BackupConfiguration\nmetadata: {name: a, namespace: b}\nspec:\n  schedule: '@daily'\n  repository: {name: r}\n  target: {redis: {address: 'h:1'}}\n",
		"apiVersion: stash.appscode.com/v1beta1\nkind: BackupConfiguration\nmetadata: {name: a}\nspec: {schedule: '* * * * *', repository: {name: r}, target: {ref: {apiVersion: appcatalog.appscode.com/v1alpha1, kind: AppBinding, name: x}}}\n---\nkind: List\nitems: [{kind: Repository}]\n",
		"a: &a [*a, *a]\nb: [*a, *a, *a]\n",
		"apiVersion: v1\nkind: List\nitems:\n- apiVersion: stash.dev/v1alpha1\n  kind: Repository\n  metadata: {name: r}\n  spec: {backend: {gcs: {bucket: b}, storageSecretName: s}}\n",
		"{\"apiVersion\":\"stash.dev/v1alpha1\",\"kind\":\"RestoreSession\",\"metadata\":{\"name\":\"x\",\"name\":\"y\"}}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := splitDocuments("fuzz.yaml", bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, d := range docs {
			for _, r := range ValidateDocument(d) {
				if r.Verdict == "" {
					t.Fatalf("document %d: a result without a verdict: %+v", d.index, r)
				}
			}
			if json, err := d.toJSON(); err == nil {
				_, _, _ = convertDocument(json)
			}
		}
	})
}
