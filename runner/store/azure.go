package store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"gocloud.dev/blob"
	"gocloud.dev/blob/azureblob"
)

// openAzure opens azblob://container/prefix[?domain=host:port&protocol=http&localemu=true] with
// the account name and key of the storage Secret. The container must exist.
func openAzure(ctx context.Context, u *url.URL, env map[string]string) (*blob.Bucket, error) {
	if u.Host == "" {
		return nil, errors.New("azblob url has no container (use azblob://container/prefix)")
	}
	account, key := env[EnvAzureAccountName], env[EnvAzureAccountKey]
	if account == "" || key == "" {
		return nil, fmt.Errorf("azure repository needs %s and %s in the storage Secret", EnvAzureAccountName, EnvAzureAccountKey)
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
	cred, err := azblob.NewSharedKeyCredential(account, key)
	if err != nil {
		return nil, fmt.Errorf("%s is not a valid azure storage key: %w", EnvAzureAccountKey, err)
	}
	tr, err := transport(env, false)
	if err != nil {
		return nil, err
	}
	opts := &container.ClientOptions{}
	opts.Transport = &http.Client{Transport: tr}
	client, err := container.NewClientWithSharedKeyCredential(containerURL, cred, opts)
	if err != nil {
		return nil, fmt.Errorf("create azure client: %w", err)
	}
	if _, err := client.GetProperties(ctx, nil); err != nil {
		return nil, explainAzure(err, u.Host, string(svc))
	}
	b, err := azureblob.OpenBucket(ctx, client, nil)
	if err != nil {
		return nil, fmt.Errorf("open azure container %q: %w", u.Host, err)
	}
	return b, nil
}

func explainAzure(err error, containerName, svc string) error {
	var re *azcore.ResponseError
	switch {
	case bloberror.HasCode(err, bloberror.ContainerNotFound):
		return fmt.Errorf("azure container %q does not exist at %s (create it first, or fix the container name): %w", containerName, svc, err)
	case bloberror.HasCode(err, bloberror.AuthenticationFailed, bloberror.AuthorizationFailure, bloberror.InvalidAuthenticationInfo),
		errors.As(err, &re) && re.StatusCode == http.StatusForbidden:
		return fmt.Errorf("azure denied access to container %q at %s: check %s and %s in the storage Secret: %w",
			containerName, svc, EnvAzureAccountName, EnvAzureAccountKey, err)
	}
	return fmt.Errorf("reach azure container %q at %s: %w", containerName, svc, err)
}
