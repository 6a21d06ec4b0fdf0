package realnode

import (
	"errors"
	"fmt"
)

func errorf(format string, args ...any) error { return errors.New(fmt.Sprintf(format, args...)) }

// RedisManifest is a Pod running redis-server from the image, non-root on a read-only root
// filesystem, and a Service in front of it; password may be empty.
func RedisManifest(ns, name, image, password string) string {
	auth := ""
	if password != "" {
		auth = fmt.Sprintf(", --requirepass, %q", password)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %[2]s, namespace: %[1]s, labels: {app: %[2]s}}
spec:
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}
  containers:
  - name: redis
    image: %[3]s
    imagePullPolicy: Never
    args: [--port, "6379", --bind, 0.0.0.0, --protected-mode, "no", --save, "", --appendonly, "no", --enable-debug-command, "yes", --dir, /data%[4]s]
    ports: [{containerPort: 6379}]
    readinessProbe: {tcpSocket: {port: 6379}, periodSeconds: 1}
    securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false}
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, emptyDir: {}}]
---
apiVersion: v1
kind: Service
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  selector: {app: %[2]s}
  ports: [{port: 6379, targetPort: 6379}]
`, ns, name, image, auth)
}
