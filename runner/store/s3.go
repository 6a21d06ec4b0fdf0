package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"

	"stash.dev/redis/api/v1alpha1"
)

// openS3 opens s3://bucket/prefix?endpoint=https://host:port&region=R[&insecure_tls=true].
// A custom endpoint (MinIO, Ceph, ...) is addressed path-style. The bucket must exist: it is
// checked here so that a wrong name or key fails with an explanation instead of on first write.
// The keys of the storage Secret are used when it has them; without them the AWS SDK's default
// chain finds credentials in the Pod (see s3CredentialSource).
func openS3(ctx context.Context, u *url.URL, env map[string]string, attempts int, ioTimeout time.Duration) (*blob.Bucket, error) {
	if u.Host == "" {
		return nil, errors.New("s3 url has no bucket (use s3://bucket/prefix)")
	}
	q := u.Query()
	region := q.Get("region")
	if region == "" {
		region = "us-east-1"
	}
	insecure := false
	if v := q.Get("insecure_tls"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("s3 url: insecure_tls: %w", err)
		}
		insecure = b
	}
	tr, err := transport(env, insecure, ioTimeout)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Transport: tr}
	creds, source, err := s3Credentials(ctx, env, region)
	if err != nil {
		return nil, err
	}
	cfg := aws.Config{
		Region:      region,
		Credentials: creds,
		HTTPClient:  hc,
		// A bounded number of tries per request, so an unreachable endpoint fails the run.
		RetryMaxAttempts: attempts,
		// S3-compatible servers do not all know the newer default checksums.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	endpoint := q.Get("endpoint")
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			o.UsePathStyle = true
		}
	})
	where := "s3"
	if endpoint != "" {
		where = v1alpha1.RedactURL(endpoint)
	}
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(u.Host)}); err != nil {
		return nil, explainS3(err, u.Host, where, source)
	}
	b, err := s3blob.OpenBucket(ctx, client, u.Host, nil)
	if err != nil {
		return nil, fmt.Errorf("open s3 bucket %q: %w", u.Host, err)
	}
	return b, nil
}

// transport trusts CA_CERT_DATA (a PEM bundle) in addition to nothing else when it is set, as a
// private S3 or Azure endpoint with its own CA needs, and gives every read and write of its
// connections the idle deadline ioTimeout.
func transport(env map[string]string, insecure bool, ioTimeout time.Duration) (*http.Transport, error) {
	tr := idleTransport(ioTimeout)
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	if ca := env[EnvCACertData]; ca != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(ca)) {
			return nil, fmt.Errorf("%s in the storage Secret holds no PEM certificate", EnvCACertData)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return tr, nil
}

// s3Credentials chooses the credentials: the storage Secret's key pair when it has one, else the
// AWS SDK's default chain, which reads the process environment: a web identity token
// (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE, as IRSA injects them), EKS Pod Identity
// (AWS_CONTAINER_CREDENTIALS_FULL_URI), static AWS_ACCESS_KEY_ID, shared config files, the
// instance role. source says which, for error messages; it never holds a secret.
func s3Credentials(ctx context.Context, env map[string]string, region string) (aws.CredentialsProvider, string, error) {
	id, secret := env[EnvAWSAccessKeyID], env[EnvAWSSecretAccessKey]
	switch {
	case id != "" && secret != "":
		return credentials.NewStaticCredentialsProvider(id, secret, ""), "the storage Secret's " + EnvAWSAccessKeyID + " and " + EnvAWSSecretAccessKey, nil
	case id != "" || secret != "":
		return nil, "", fmt.Errorf("the storage Secret has only one of %s and %s: set both, or neither to use the Pod's workload identity", EnvAWSAccessKeyID, EnvAWSSecretAccessKey)
	}
	// The chain talks to AWS (STS, the Pod Identity agent, IMDS) with the SDK's own HTTP client:
	// CA_CERT_DATA is for the storage endpoint, and AWS_CA_BUNDLE is honoured there.
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(region))
	if err != nil {
		return nil, "", fmt.Errorf("load the AWS default credential chain (the storage Secret has no %s): %w", EnvAWSAccessKeyID, err)
	}
	source := s3CredentialSource(os.Getenv)
	// Asked here, the chain's failure is named as such rather than as a failed bucket request.
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return nil, "", fmt.Errorf("s3: no credentials from %s: %w", source, err)
	}
	return cfg.Credentials, source, nil
}

// s3CredentialSource describes which source of the default chain the environment selects, in
// the chain's order.
func s3CredentialSource(getenv func(string) string) string {
	const chain = "the AWS default credential chain (the storage Secret has no " + EnvAWSAccessKeyID + ")"
	switch {
	case getenv("AWS_ACCESS_KEY_ID") != "":
		return chain + ": AWS_ACCESS_KEY_ID of the environment"
	case getenv("AWS_WEB_IDENTITY_TOKEN_FILE") != "":
		return fmt.Sprintf("%s: web identity, role %q, token file %s", chain, getenv("AWS_ROLE_ARN"), getenv("AWS_WEB_IDENTITY_TOKEN_FILE"))
	case getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI") != "" || getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") != "":
		return chain + ": container credentials (EKS Pod Identity)"
	}
	return chain + ": shared config or instance role (no AWS_ROLE_ARN/AWS_WEB_IDENTITY_TOKEN_FILE, no EKS Pod Identity in the environment)"
}

func explainS3(err error, bucket, where, source string) error {
	var ae smithy.APIError
	code := ""
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	switch code {
	case "NotFound", "NoSuchBucket":
		return fmt.Errorf("s3 bucket %q does not exist at %s (create it first, or fix the bucket name): %w", bucket, where, err)
	case "Forbidden", "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId":
		return fmt.Errorf("s3 denied access to bucket %q at %s with credentials from %s: check them and their permissions: %w",
			bucket, where, source, err)
	}
	return fmt.Errorf("reach s3 bucket %q at %s (credentials from %s): %w", bucket, where, source, err)
}
