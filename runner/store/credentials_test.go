package store_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"stash.dev/redis/runner/store"
	"stash.dev/redis/test/miniotest"
)

// isolateAWS clears every variable of the AWS default chain and points the shared config
// files at nothing, so that a test sees only what it sets. IMDS is off: there is no instance.
func isolateAWS(t *testing.T) {
	t.Helper()
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"} {
		t.Setenv(k, "")
	}
	none := filepath.Join(t.TempDir(), "none")
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// roundTrip writes an object through a freshly opened bucket and reads it back.
func roundTrip(t *testing.T, url string, env map[string]string) {
	t.Helper()
	ctx := context.Background()
	b, err := store.Open(ctx, url, env)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.WriteAll(ctx, "probe", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if got, err := b.ReadAll(ctx, "probe"); err != nil || string(got) != "x" {
		t.Fatalf("read back %q, %v", got, err)
	}
}

// stsServer answers AssumeRoleWithWebIdentity as AWS STS does, for one role and one token,
// with the given credentials (no session token: MinIO's root user takes none). AWS STS cannot
// be reached from a test; MinIO's own STS needs an OpenID provider to vouch for the token.
func stsServer(t *testing.T, role, token, id, secret string, calls *atomic.Int32) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.Form.Get("Action") != "AssumeRoleWithWebIdentity" || r.Form.Get("RoleArn") != role || r.Form.Get("WebIdentityToken") != token {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized to assume the role</Message></Error><RequestId>1</RequestId></ErrorResponse>`)
			return
		}
		fmt.Fprintf(w, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult>
<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey><Expiration>%s</Expiration></Credentials>
<AssumedRoleUser><Arn>%s/session</Arn><AssumedRoleId>AROA:session</AssumedRoleId></AssumedRoleUser>
</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>`,
			id, secret, time.Now().Add(time.Hour).UTC().Format(time.RFC3339), role)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestS3WithoutKeysUsesTheDefaultChain: a storage Secret without AWS keys makes the runner
// take credentials from the process environment through the AWS SDK's default chain.
func TestS3WithoutKeysUsesTheDefaultChain(t *testing.T) {
	s3 := miniotest.Start(t, "chain")
	noKeys := map[string]string{"RESTIC_PASSWORD": "pw"}

	t.Run("environment keys", func(t *testing.T) {
		isolateAWS(t)
		t.Setenv("AWS_ACCESS_KEY_ID", miniotest.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", miniotest.SecretKey)
		roundTrip(t, s3.URL("env"), noKeys)
	})

	// The web identity token file and role are what IRSA injects into a Pod. The runner reads
	// them, asks STS (at AWS_ENDPOINT_URL_STS) for credentials, and uses those with MinIO.
	const role = "arn:aws:iam::123456789012:role/stash-runner"
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("projected-service-account-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	sts := stsServer(t, role, "projected-service-account-token", miniotest.AccessKey, miniotest.SecretKey, &calls)
	webIdentity := func(t *testing.T, role string) {
		isolateAWS(t)
		t.Setenv("AWS_ROLE_ARN", role)
		t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", token)
		t.Setenv("AWS_ENDPOINT_URL_STS", sts.URL)
	}
	t.Run("web identity", func(t *testing.T) {
		webIdentity(t, role)
		calls.Store(0)
		roundTrip(t, s3.URL("irsa"), noKeys)
		if calls.Load() == 0 {
			t.Fatal("STS was never asked: the credentials did not come from the web identity token")
		}
	})
	t.Run("web identity refused", func(t *testing.T) {
		webIdentity(t, role+"-other")
		start := time.Now()
		_, err := store.Open(context.Background(), s3.URL("irsa"), noKeys)
		for _, want := range []string{"no credentials from the AWS default credential chain", "web identity", role + "-other", token, "AccessDenied"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("got %v, want an error containing %q", err, want)
			}
		}
		if took := time.Since(start); took > 30*time.Second {
			t.Errorf("took %s", took)
		}
	})
	t.Run("nothing", func(t *testing.T) {
		isolateAWS(t)
		_, err := store.Open(context.Background(), s3.URL("none"), noKeys)
		if err == nil || !strings.Contains(err.Error(), "no credentials from the AWS default credential chain") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("half a key pair", func(t *testing.T) {
		isolateAWS(t)
		_, err := store.Open(context.Background(), s3.URL("half"), map[string]string{store.EnvAWSAccessKeyID: miniotest.AccessKey})
		if err == nil || !strings.Contains(err.Error(), "only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") {
			t.Errorf("got %v", err)
		}
	})
}

// TestAzureWithoutKeyUsesAzidentity: without AZURE_ACCOUNT_KEY the runner asks azidentity's
// default chain for a token. With workload identity's variables (as the AKS webhook injects
// them) and an authority that cannot be reached, it fails in bounded time and says which
// identity it tried; a key in the Secret is covered with Azurite in runner/restore.
func TestAzureWithoutKeyUsesAzidentity(t *testing.T) {
	for _, k := range []string{"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME", "IDENTITY_ENDPOINT", "MSI_ENDPOINT"} {
		t.Setenv(k, "")
	}
	token := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(token, []byte("projected-service-account-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AZURE_CLIENT_ID", "11111111-1111-1111-1111-111111111111")
	t.Setenv("AZURE_TENANT_ID", "22222222-2222-2222-2222-222222222222")
	t.Setenv("AZURE_FEDERATED_TOKEN_FILE", token)
	t.Setenv("AZURE_AUTHORITY_HOST", "https://"+closedPort(t)+"/")
	start := time.Now()
	_, err := store.Open(context.Background(), "azblob://container/p?max_attempts=2&domain=127.0.0.1:1&protocol=http&localemu=true",
		map[string]string{store.EnvAzureAccountName: "account"})
	took := time.Since(start)
	t.Logf("failed after %s: %v", took.Round(time.Millisecond), err)
	for _, want := range []string{"no token from azidentity's default chain", "workload identity", token, "WorkloadIdentityCredential"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want an error containing %q", err, want)
		}
	}
	if took > 30*time.Second {
		t.Errorf("took %s, want under 30s", took)
	}
}
