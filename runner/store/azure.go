package store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"gocloud.dev/blob"
	"gocloud.dev/blob/azureblob"
)

// openAzure opens azblob://container/prefix[?domain=host:port&protocol=http&localemu=true] with
// the account name of the storage Secret and its account key, or, without a key, a Microsoft
// Entra token from azidentity's default chain (workload identity, managed identity). The
// container must exist.
func openAzure(ctx context.Context, u *url.URL, env map[string]string, attempts int, ioTimeout time.Duration) (*blob.Bucket, error) {
	if u.Host == "" {
		return nil, errors.New("azblob url has no container (use azblob://container/prefix)")
	}
	account, key := env[EnvAzureAccountName], env[EnvAzureAccountKey]
	if account == "" {
		return nil, fmt.Errorf("azure repository needs %s in the storage Secret", EnvAzureAccountName)
	}
	q := u.Query()
	emu := false
	if v := q.Get("localemu"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("azblob url: localemu: %w", err)
		}
		emu = b
	}
	svc, err := azureblob.NewServiceURL(&azureblob.ServiceURLOptions{
		AccountName: account, StorageDomain: q.Get("domain"), Protocol: q.Get("protocol"), IsLocalEmulator: emu,
	})
	if err != nil {
		return nil, fmt.Errorf("azblob url: %w", err)
	}
	containerURL, err := url.JoinPath(string(svc), u.Host)
	if err != nil {
		return nil, fmt.Errorf("azblob url: %w", err)
	}
	tr, err := transport(env, false, ioTimeout)
	if err != nil {
		return nil, err
	}
	opts := &container.ClientOptions{}
	opts.Transport = &http.Client{Transport: tr}
	opts.Retry = azureRetry(attempts)
	var client *container.Client
	source := "the storage Secret's " + EnvAzureAccountName + " and " + EnvAzureAccountKey
	if key != "" {
		cred, err := azblob.NewSharedKeyCredential(account, key)
		if err != nil {
			return nil, fmt.Errorf("%s is not a valid azure storage key: %w", EnvAzureAccountKey, err)
		}
		if client, err = container.NewClientWithSharedKeyCredential(containerURL, cred, opts); err != nil {
			return nil, fmt.Errorf("create azure client: %w", err)
		}
	} else {
		source = "azidentity's default chain (the storage Secret has no " + EnvAzureAccountKey + "): " + azureCredentialSource(os.Getenv)
		credOpts := &azidentity.DefaultAzureCredentialOptions{}
		credOpts.Transport = opts.Transport
		credOpts.Retry = opts.Retry
		cred, err := azidentity.NewDefaultAzureCredential(credOpts)
		if err != nil {
			return nil, fmt.Errorf("azure credentials from %s: %w", source, err)
		}
		// Asked here, the chain's failure is named as such rather than as a failed request.
		if _, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{azureStorageScope}}); err != nil {
			return nil, fmt.Errorf("azure: no token from %s: %w", source, err)
		}
		if client, err = container.NewClient(containerURL, cred, opts); err != nil {
			return nil, fmt.Errorf("create azure client: %w", err)
		}
	}
	if _, err := client.GetProperties(ctx, nil); err != nil {
		return nil, explainAzure(err, u.Host, string(svc), source)
	}
	b, err := azureblob.OpenBucket(ctx, client, nil)
	if err != nil {
		return nil, fmt.Errorf("open azure container %q: %w", u.Host, err)
	}
	return b, nil
}

// azureStorageScope is the Microsoft Entra scope of Azure Storage's data plane.
const azureStorageScope = "https://storage.azure.com/.default"

// azureRetry bounds the tries of every request, the token requests of azidentity included.
func azureRetry(attempts int) policy.RetryOptions {
	r := policy.RetryOptions{MaxRetries: int32(attempts - 1), RetryDelay: 500 * time.Millisecond, MaxRetryDelay: 5 * time.Second}
	if r.MaxRetries == 0 {
		r.MaxRetries = -1 // 0 would mean the SDK's default of 3
	}
	return r
}

// azureCredentialSource describes which credential of azidentity's default chain the
// environment selects, in the chain's order; it never holds a secret.
func azureCredentialSource(getenv func(string) string) string {
	switch {
	case getenv("AZURE_CLIENT_SECRET") != "" || getenv("AZURE_CLIENT_CERTIFICATE_PATH") != "":
		return fmt.Sprintf("service principal %s of the environment", getenv("AZURE_CLIENT_ID"))
	case getenv("AZURE_FEDERATED_TOKEN_FILE") != "":
		return fmt.Sprintf("workload identity, client %s, tenant %s, token file %s",
			getenv("AZURE_CLIENT_ID"), getenv("AZURE_TENANT_ID"), getenv("AZURE_FEDERATED_TOKEN_FILE"))
	}
	return "managed identity (no AZURE_FEDERATED_TOKEN_FILE of workload identity in the environment)"
}

func explainAzure(err error, containerName, svc, source string) error {
	var re *azcore.ResponseError
	switch {
	case bloberror.HasCode(err, bloberror.ContainerNotFound):
		return fmt.Errorf("azure container %q does not exist at %s (create it first, or fix the container name): %w", containerName, svc, err)
	case bloberror.HasCode(err, bloberror.AuthenticationFailed, bloberror.AuthorizationFailure, bloberror.InvalidAuthenticationInfo),
		errors.As(err, &re) && re.StatusCode == http.StatusForbidden:
		return fmt.Errorf("azure denied access to container %q at %s with credentials from %s: check them and their role on the container: %w",
			containerName, svc, source, err)
	}
	return fmt.Errorf("reach azure container %q at %s (credentials from %s): %w", containerName, svc, source, err)
}
