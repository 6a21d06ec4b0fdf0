package v1alpha1

import (
	"slices"
	"testing"
)

// TestMissingSecretKeysWithoutCloudKeys: cloud keys are optional so that a Pod's workload
// identity can stand in for them; the password, and Azure's account name, are not.
func TestMissingSecretKeysWithoutCloudKeys(t *testing.T) {
	pw := map[string][]byte{SecretKeyResticPassword: []byte("pw")}
	for _, tt := range []struct {
		name    string
		backend Backend
		data    map[string][]byte
		want    []string
	}{
		{"s3 without keys", Backend{S3: &S3Spec{Bucket: "b"}}, pw, nil},
		{"gcs without a key", Backend{GCS: &GCSSpec{Bucket: "b"}}, pw, nil},
		{"azure without a key", Backend{Azure: &AzureSpec{Container: "c"}}, map[string][]byte{SecretKeyResticPassword: []byte("pw"), SecretKeyAzureAccountName: []byte("acct")}, nil},
		{"azure without an account", Backend{Azure: &AzureSpec{Container: "c"}}, pw, []string{SecretKeyAzureAccountName}},
		{"no password", Backend{S3: &S3Spec{Bucket: "b"}}, map[string][]byte{SecretKeyAWSAccessKeyID: []byte("id")},
			[]string{SecretKeyResticPassword + " or " + SecretKeyEncryptionPassword}},
	} {
		if got := tt.backend.MissingSecretKeys(tt.data); !slices.Equal(got, tt.want) {
			t.Errorf("%s: missing %q, want %q", tt.name, got, tt.want)
		}
	}
}
