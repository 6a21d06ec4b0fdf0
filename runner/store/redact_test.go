package store

import (
	"context"
	"strings"
	"testing"
)

// TestRepositoryURLCredentialsNeverShown: an s3:// URL whose endpoint holds credentials is
// refused before anything is opened, and no message repeats the password, whatever else is
// wrong with the URL.
func TestRepositoryURLCredentialsNeverShown(t *testing.T) {
	const secret = "s3cr3tPassw0rd"
	for _, raw := range []string{
		"s3://bucket/p?endpoint=http://AKIAEXAMPLE:" + secret + "@127.0.0.1:9",
		"s3://bucket/p?endpoint=http%3A%2F%2FAKIAEXAMPLE%3A" + secret + "%40127.0.0.1%3A9",
		"s3://bucket/p?endpoint=http://AKIAEXAMPLE:" + secret + "@127.0.0.1:9&max_attempts=99",
		"s3://AKIAEXAMPLE:" + secret + "@bucket/p?max_attempts=99",
		"s3://AKIAEXAMPLE:" + secret + "@bucket/p%zz",
		"http://AKIAEXAMPLE:" + secret + "@bucket/p",
	} {
		_, err := Open(context.Background(), raw, nil)
		if err == nil {
			t.Fatalf("Open(%q) succeeded", raw)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("Open(%q): the error shows the password: %v", raw, err)
		}
	}
	_, err := Open(context.Background(), "s3://bucket/p?endpoint=http://AKIAEXAMPLE:"+secret+"@127.0.0.1:9", nil)
	if !strings.Contains(err.Error(), "must not hold a user name or password") {
		t.Errorf("endpoint with credentials: %v, want a refusal that says why", err)
	}
	_, err = Open(context.Background(), "s3://bucket/p?endpoint=http://169.254.169.254", nil)
	if err == nil || !strings.Contains(err.Error(), "metadata service") {
		t.Errorf("endpoint of the metadata service: %v, want a refusal", err)
	}
}
