package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"
)

// openS3 opens s3://bucket/prefix?endpoint=https://host:port&region=R[&insecure_tls=true].
// A custom endpoint (MinIO, Ceph, ...) is addressed path-style. The bucket must exist: it is
// checked here so that a wrong name or key fails with an explanation instead of on first write.
func openS3(ctx context.Context, u *url.URL, env map[string]string) (*blob.Bucket, error) {
	if u.Host == "" {
		return nil, errors.New("s3 url has no bucket (use s3://bucket/prefix)")
	}
	id, secret := env[EnvAWSAccessKeyID], env[EnvAWSSecretAccessKey]
	if id == "" || secret == "" {
		return nil, fmt.Errorf("s3 repository needs %s and %s in the storage Secret", EnvAWSAccessKeyID, EnvAWSSecretAccessKey)
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
	tr, err := transport(env, insecure)
	if err != nil {
		return nil, err
	}
	cfg := aws.Config{
		Region:      region,
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, ""),
		HTTPClient:  &http.Client{Transport: tr},
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
		where = endpoint
	}
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(u.Host)}); err != nil {
		return nil, explainS3(err, u.Host, where)
	}
	b, err := s3blob.OpenBucket(ctx, client, u.Host, nil)
	if err != nil {
		return nil, fmt.Errorf("open s3 bucket %q: %w", u.Host, err)
	}
	return b, nil
}

// transport trusts CA_CERT_DATA (a PEM bundle) in addition to nothing else when it is set, as a
// private S3 or Azure endpoint with its own CA needs.
func transport(env map[string]string, insecure bool) (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
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

func explainS3(err error, bucket, where string) error {
	var ae smithy.APIError
	code := ""
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	switch code {
	case "NotFound", "NoSuchBucket":
		return fmt.Errorf("s3 bucket %q does not exist at %s (create it first, or fix the bucket name): %w", bucket, where, err)
	case "Forbidden", "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId":
		return fmt.Errorf("s3 denied access to bucket %q at %s: check %s and %s in the storage Secret and the key's permissions: %w",
			bucket, where, EnvAWSAccessKeyID, EnvAWSSecretAccessKey, err)
	}
	return fmt.Errorf("reach s3 bucket %q at %s: %w", bucket, where, err)
}
