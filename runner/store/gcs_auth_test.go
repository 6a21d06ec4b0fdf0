package store

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"stash.dev/redis/test/testproc"
)

// TestGCSServiceAccountOverTheIdleTransport: a GCS client with a service account key (not the
// emulator's no-auth path) sends its requests through the shared idle-deadline transport with
// the key's token: the token is fetched from the key's token_uri (a real OAuth2 JWT-bearer
// exchange with a real local server) and put in the Authorization header, and a storage
// endpoint that accepts and never answers fails the request after the idle deadline, naming
// the stall, instead of waiting for the OS.
func TestGCSServiceAccountOverTheIdleTransport(t *testing.T) {
	var tokenRequests atomic.Int32
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("assertion") == "" {
			http.Error(w, "want a JWT-bearer grant", http.StatusBadRequest)
			return
		}
		tokenRequests.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"token-from-the-key","token_type":"Bearer","expires_in":3600}`))
	}))
	defer tokens.Close()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	account, err := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "p", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "runner@p.iam.gserviceaccount.com", "client_id": "1", "token_uri": tokens.URL,
	})
	if err != nil {
		t.Fatal(err)
	}
	const idle = time.Second
	rt, _, err := gcsTransport(context.Background(), map[string]string{EnvGoogleServiceAccountJSON: string(account)}, idleTransport(idle))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: rt}

	var auth atomic.Value
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth.Store(r.Header.Get("Authorization"))
	}))
	defer storage.Close()
	resp, err := client.Get(storage.URL + "/storage/v1/b/bucket/o")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, _ := auth.Load().(string); got != "Bearer token-from-the-key" || tokenRequests.Load() != 1 {
		t.Fatalf("Authorization %q after %d token requests, want the key's token after one", got, tokenRequests.Load())
	}

	// Accepts, never answers.
	silent := testproc.Silent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+silent+"/storage/v1/b/bucket/o", nil)
	start := time.Now()
	resp, err = client.Do(req)
	took := time.Since(start)
	if err == nil {
		resp.Body.Close()
		t.Fatal("a request to a storage endpoint that never answers succeeded")
	}
	t.Logf("stalled endpoint: failed after %s: %v", took.Round(time.Millisecond), err)
	if !strings.Contains(err.Error(), "the link stalled") || took > idle+5*time.Second {
		t.Fatalf("after %s: %v; want the stall named after about %s", took, err, idle)
	}
}
