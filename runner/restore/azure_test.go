package restore_test

import (
	"context"
	"strings"
	"testing"

	"stash.dev/redis/runner/store"
	"stash.dev/redis/test/azuritetest"
)

func TestRoundTripAzure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	az := azuritetest.Start(t, "stash-test")
	roundTripThrough(t, az, 50_000)

	wrongKey := az.Env()
	wrongKey["AZURE_ACCOUNT_KEY"] = "d3Jvbmc=" // valid base64, wrong key
	tests := []struct {
		name, url string
		env       map[string]string
		want      string
	}{
		{"wrong key", az.URL("x"), wrongKey, "denied access"},
		{"missing container", strings.Replace(az.URL("x"), "stash-test", "no-such-container", 1), az.Env(), `"no-such-container" does not exist`},
		{"no credentials", az.URL("x"), nil, "needs AZURE_ACCOUNT_NAME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := store.Open(ctx, tt.url, tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
