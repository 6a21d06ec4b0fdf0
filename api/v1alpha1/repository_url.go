package v1alpha1

import (
	"net/url"
	"path"
	"strings"
)

// URL is the repository URL of the backend, the same string `stash-runner --repository`
// takes: gs://bucket/prefix, s3://bucket/prefix?endpoint=...&region=..., azblob://container/prefix
// or file:///mountPath/subPath. It is empty when no backend is set.
func (b *Backend) URL() string {
	join := func(scheme, bucket, prefix string) string {
		u := scheme + "://" + bucket
		if p := strings.Trim(prefix, "/"); p != "" {
			u += "/" + p
		}
		return u
	}
	switch {
	case b.GCS != nil:
		return join("gs", b.GCS.Bucket, b.GCS.Prefix)
	case b.S3 != nil:
		u := join("s3", b.S3.Bucket, b.S3.Prefix)
		q := url.Values{}
		if b.S3.Endpoint != "" {
			q.Set("endpoint", b.S3.Endpoint)
		}
		if b.S3.Region != "" {
			q.Set("region", b.S3.Region)
		}
		if b.S3.InsecureTLS {
			q.Set("insecure_tls", "true")
		}
		if len(q) > 0 {
			u += "?" + q.Encode()
		}
		return u
	case b.Azure != nil:
		return join("azblob", b.Azure.Container, b.Azure.Prefix)
	case b.Local != nil:
		return "file://" + path.Join(b.Local.MountPath, b.Local.SubPath)
	}
	return ""
}

// Provider is a one-word name of the backend: gcs, s3, azure or local.
func (b *Backend) Provider() string {
	switch {
	case b.GCS != nil:
		return "gcs"
	case b.S3 != nil:
		return "s3"
	case b.Azure != nil:
		return "azure"
	case b.Local != nil:
		return "local"
	}
	return ""
}

// RequiredSecretKeys lists the keys the storage Secret of this backend must hold; each entry
// lists alternatives, any one of which will do. The repository password may be under Stash's
// name or ours. Cloud keys are optional, so that the runner can use the Pod's workload
// identity instead: GCS without GOOGLE_SERVICE_ACCOUNT_JSON_KEY uses Application Default
// Credentials, S3 without AWS_ACCESS_KEY_ID the AWS SDK's default chain (IRSA's web identity
// token, EKS Pod Identity), Azure without AZURE_ACCOUNT_KEY a Microsoft Entra token
// (workload or managed identity). Azure still needs the account name, which no identity
// implies.
func (b *Backend) RequiredSecretKeys() [][]string {
	keys := [][]string{PasswordSecretKeys}
	if b.Azure != nil {
		keys = append(keys, []string{SecretKeyAzureAccountName})
	}
	return keys
}

// MissingSecretKeys returns the required keys that data lacks, naming the first alternative
// of each (with the others after "or").
func (b *Backend) MissingSecretKeys(data map[string][]byte) []string {
	var missing []string
	for _, alts := range b.RequiredSecretKeys() {
		found := false
		for _, k := range alts {
			if len(data[k]) > 0 {
				found = true
			}
		}
		if !found {
			missing = append(missing, strings.Join(alts, " or "))
		}
	}
	return missing
}
