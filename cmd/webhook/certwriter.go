package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// certWriter copies the serving certificate from its Secret into the certificate directory,
// as the kubelet does for a mounted Secret, so that a controller running outside the cluster
// serves the certificate the rotator made. The webhook server reloads changed files itself.
type certWriter struct {
	c   client.Reader
	key types.NamespacedName
	dir string
}

// Start polls the Secret until ctx ends.
func (w *certWriter) Start(ctx context.Context) error {
	log := ctrl.Log.WithName("cert-writer")
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if err := w.sync(ctx); err != nil {
			log.Error(err, "copy certificate")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (w *certWriter) sync(ctx context.Context) error {
	var s corev1.Secret
	if err := w.c.Get(ctx, w.key, &s); err != nil {
		return fmt.Errorf("read certificate secret %s: %w", w.key, err)
	}
	if err := os.MkdirAll(w.dir, 0o700); err != nil {
		return err
	}
	// Key first: the webhook server loads the pair when the certificate changes.
	for _, name := range []string{corev1.TLSPrivateKeyKey, corev1.TLSCertKey} {
		data := s.Data[name]
		if len(data) == 0 {
			return nil
		}
		path := filepath.Join(w.dir, name)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
			continue
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	}
	return nil
}
