// Package store opens a repository URL as a gocloud.dev/blob bucket.
//
// Credentials come from an env-like map instead of the process environment, so a controller can
// pass the data of a Kubernetes Secret directly and nothing is written to disk.
package store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	gax "github.com/googleapis/gax-go/v2"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/gcsblob"
	"google.golang.org/api/option"
	htransport "google.golang.org/api/transport/http"

	"stash.dev/redis/api/v1alpha1"
)

// Storage Secret keys understood by Open; the API package owns the names.
const (
	EnvGoogleServiceAccountJSON = v1alpha1.SecretKeyGoogleServiceAccountJSON
	EnvGoogleProjectID          = v1alpha1.SecretKeyGoogleProjectID
	EnvStorageEmulatorHost      = v1alpha1.SecretKeyStorageEmulatorHost
	EnvAWSAccessKeyID           = v1alpha1.SecretKeyAWSAccessKeyID
	EnvAWSSecretAccessKey       = v1alpha1.SecretKeyAWSSecretAccessKey
	EnvAzureAccountName         = v1alpha1.SecretKeyAzureAccountName
	EnvAzureAccountKey          = v1alpha1.SecretKeyAzureAccountKey
	EnvCACertData               = v1alpha1.SecretKeyCACertData
)

// Bucket is an opened repository location: the bucket and the key prefix inside it.
// All repository objects live under Prefix so that several repositories can share a bucket.
type Bucket struct {
	*blob.Bucket
	// URL is the repository URL the bucket was opened from, without credentials or query.
	URL string
	// BeforeWrite tunes the backend's writer for large streaming uploads; pass it in
	// blob.WriterOptions. It may be nil.
	BeforeWrite func(asFunc func(any) bool) error
	// dir is the directory of a file:// repository, where Create writes on its own.
	dir string
}

// DefaultAttempts is how often a storage request is tried before the operation fails, unless
// the URL's max_attempts says otherwise. Without a bound the GCS client retries an unreachable
// endpoint until the context ends, and a session would hang until its Job's deadline.
const DefaultAttempts = 5

// location is a repository URL checked before anything is opened: a known scheme and the
// options every backend shares, parsed once (and fuzzed: FuzzParseLocation).
type location struct {
	u                  *url.URL
	attempts           int
	ioTimeout          time.Duration
	chunkRetryDeadline time.Duration // gs only; 0 keeps the client's default
}

func parseLocation(rawURL string) (location, error) {
	// Messages show the URL redacted: an s3:// URL's endpoint may carry credentials.
	shown := v1alpha1.RedactURL(rawURL)
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its Error() quotes the whole URL
		}
		return location{}, fmt.Errorf("parse repository url %q: %w", shown, err)
	}
	loc := location{u: u, attempts: DefaultAttempts, ioTimeout: DefaultIOTimeout}
	switch u.Scheme {
	case "file", "gs", "s3", "azblob":
	case "":
		return location{}, fmt.Errorf("repository url %q has no scheme (use file:///path, gs://bucket/prefix, s3://bucket/prefix or azblob://container/prefix)", shown)
	default:
		return location{}, fmt.Errorf("repository url %q: unsupported scheme %q (supported: file, gs, s3, azblob)", shown, u.Scheme)
	}
	if u.Scheme == "file" {
		return loc, nil
	}
	q := u.Query()
	if ep := q.Get("endpoint"); ep != "" && u.Scheme == "s3" {
		if msg := v1alpha1.S3EndpointProblem(ep); msg != "" {
			return location{}, fmt.Errorf("repository url %q: endpoint %s: %s", shown, v1alpha1.RedactURL(ep), msg)
		}
	}
	if v := q.Get("max_attempts"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 20 {
			return location{}, fmt.Errorf("repository url %q: max_attempts must be a number from 1 to 20, got %q", shown, v)
		}
		loc.attempts = n
	}
	if v := q.Get("io_timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > time.Hour {
			return location{}, fmt.Errorf("repository url %q: io_timeout must be a duration from 1s to 1h, got %q", shown, v)
		}
		loc.ioTimeout = d
	}
	if v := q.Get("chunk_retry_deadline"); v != "" && u.Scheme == "gs" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return location{}, fmt.Errorf("repository url %q: chunk_retry_deadline must be a positive duration, got %q", shown, v)
		}
		loc.chunkRetryDeadline = d
	}
	return loc, nil
}

// Open opens a repository URL: file:///dir, gs://bucket/prefix[?chunk_retry_deadline=30s],
// s3://bucket/prefix[?endpoint=https://host:port&region=R&insecure_tls=true],
// azblob://container/prefix[?domain=host:port&protocol=http&localemu=true].
//
// chunk_retry_deadline bounds how long one GCS upload chunk is retried (the client's default is
// 32 s) before the backup fails. max_attempts (1..20, default DefaultAttempts) bounds the tries
// of every request to gs, s3 and azblob, with backoff between them capped at a few seconds, so
// that an unreachable or failing endpoint fails the operation in bounded time. io_timeout (1s..1h,
// default DefaultIOTimeout) is the idle deadline of every connection to gs, s3 and azblob, so
// that a stalled one fails its request too.
//
// env holds the storage Secret's keys. Cloud credentials come from it when it has them; without
// them the cloud SDKs' default chains read the process environment (GCS Application Default
// Credentials, AWS web identity and EKS Pod Identity, Azure workload and managed identity), which
// is how a Pod's workload identity reaches the runner.
func Open(ctx context.Context, rawURL string, env map[string]string) (*Bucket, error) {
	loc, err := parseLocation(rawURL)
	if err != nil {
		return nil, err
	}
	u, attempts, ioTimeout := loc.u, loc.attempts, loc.ioTimeout
	var b *blob.Bucket
	var before func(func(any) bool) error
	switch u.Scheme {
	case "file":
		b, err = openFile(u)
	case "gs":
		b, err = openGCS(ctx, u, env, attempts, ioTimeout)
		if dl := loc.chunkRetryDeadline; dl > 0 && err == nil {
			before = func(as func(any) bool) error {
				var w *storage.Writer
				if as(&w) {
					w.ChunkRetryDeadline = dl
				}
				return nil
			}
		}
	case "s3":
		b, err = openS3(ctx, u, env, attempts, ioTimeout)
	case "azblob":
		b, err = openAzure(ctx, u, env, attempts, ioTimeout)
	}
	if err != nil {
		return nil, err
	}
	prefix := strings.Trim(u.Path, "/")
	if u.Scheme != "file" && prefix != "" {
		b = blob.PrefixedBucket(b, prefix+"/")
	}
	bucket := &Bucket{Bucket: b, URL: (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String(), BeforeWrite: before}
	if u.Scheme == "file" {
		bucket.dir = filepath.FromSlash(u.Path)
	}
	return bucket, nil
}

func openFile(u *url.URL) (*blob.Bucket, error) {
	dir := filepath.FromSlash(u.Path)
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("file url must be file:///absolute/path, got host %q", u.Host)
	}
	if dir == "" {
		return nil, errors.New("file url has no path")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create repository directory: %w", err)
	}
	// NoTempDir keeps temporary files next to their target so the final rename is atomic even
	// when the OS temp dir is on another filesystem; fileblob removes them if a write is aborted.
	b, err := fileblob.OpenBucket(dir, &fileblob.Options{NoTempDir: true, CreateDir: true, Metadata: fileblob.MetadataDontWrite})
	if err != nil {
		return nil, fmt.Errorf("open directory %q: %w", dir, err)
	}
	return b, nil
}

// gcsTransport authenticates the requests base carries with the service account of the storage
// Secret, else with Application Default Credentials (the Pod's workload identity), with the
// scopes storage.NewClient asks for; auth are those credential options.
func gcsTransport(ctx context.Context, env map[string]string, base http.RoundTripper) (rt http.RoundTripper, auth []option.ClientOption, err error) {
	auth = []option.ClientOption{option.WithScopes(storage.ScopeFullControl, "https://www.googleapis.com/auth/cloud-platform")}
	if key := env[EnvGoogleServiceAccountJSON]; key != "" {
		auth = append(auth, option.WithAuthCredentialsJSON(option.ServiceAccount, []byte(key)))
	}
	rt, err = htransport.NewTransport(ctx, base, auth...)
	return rt, auth, err
}

func openGCS(ctx context.Context, u *url.URL, env map[string]string, attempts int, ioTimeout time.Duration) (*blob.Bucket, error) {
	if u.Host == "" {
		return nil, errors.New("gs url has no bucket (use gs://bucket/prefix)")
	}
	// The client gets our HTTP client, so that its connections have the idle deadline of the
	// other backends (idleTransport); with an HTTP client of its own the client no longer
	// authenticates, so the credentials' token source is put around that transport here.
	base := idleTransport(ioTimeout)
	var opts []option.ClientOption
	if host := env[EnvStorageEmulatorHost]; host != "" {
		if !strings.Contains(host, "://") {
			host = "http://" + host
		}
		// The emulator serves the JSON API only; XML reads fail against it.
		opts = append(opts, option.WithEndpoint(strings.TrimSuffix(host, "/")+"/storage/v1/"),
			option.WithoutAuthentication(), storage.WithJSONReads(), option.WithHTTPClient(&http.Client{Transport: base}))
	} else {
		rt, auth, err := gcsTransport(ctx, env, base)
		if err != nil {
			return nil, fmt.Errorf("create gcs client: %w", err)
		}
		// The credentials go to the client too, for what it signs itself (signed URLs).
		opts = append(auth, option.WithHTTPClient(&http.Client{Transport: rt}))
	}
	client, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("create gcs client: %w", err)
	}
	client.SetRetry(storage.WithMaxAttempts(attempts),
		storage.WithBackoff(gax.Backoff{Initial: 250 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2}))
	b, err := gcsblob.OpenBucket(ctx, nil, u.Host, &gcsblob.Options{Client: client})
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("open gcs bucket %q: %w", u.Host, err)
	}
	return b, nil
}
