package v1alpha1

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

type object interface {
	Default()
	Validate() field.ErrorList
}

func messages(errs field.ErrorList) []string {
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

func TestValidObjects(t *testing.T) {
	tests := map[string]object{
		"repository gcs":   gcsRepo(),
		"repository s3":    s3Repo(),
		"repository azure": azureRepo(),
		"repository local": localRepo(),
		"repository shared by selector": func() *Repository {
			r := gcsRepo()
			r.Spec.UsagePolicy = &UsagePolicy{AllowedNamespaces: AllowedNamespaces{From: NamespacesFromSelector,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"backup": "yes"}}}}
			return r
		}(),
		"backupconfiguration appbinding": backupConfig(),
		"backupconfiguration inline address": func() *BackupConfiguration {
			b := backupConfig()
			b.Spec.Target = inlineTarget()
			return b
		}(),
		"backupconfiguration inline service sentinel": func() *BackupConfiguration {
			b := backupConfig()
			b.Spec.Target = Target{Redis: &RedisTarget{Service: &ServiceTarget{Name: "redis-sentinel"}, Mode: RedisModeSentinel, MasterName: "mymaster"}}
			return b
		}(),
		"backupconfiguration cluster unix socket": func() *BackupConfiguration {
			b := backupConfig()
			b.Spec.Target = Target{Redis: &RedisTarget{Address: "/run/redis/redis.sock", Mode: RedisModeCluster, Databases: []int32{0}}}
			return b
		}(),
		"backupconfiguration every 5 minutes no retention": func() *BackupConfiguration {
			b := backupConfig()
			b.Spec.Schedule, b.Spec.RetentionPolicy = "*/5 * * * *", nil
			return b
		}(),
		"backupconfiguration descriptor schedule": func() *BackupConfiguration {
			b := backupConfig()
			b.Spec.Schedule = "@daily"
			return b
		}(),
		"backupconfiguration on february 29th": func() *BackupConfiguration {
			b := backupConfig()
			b.Spec.Schedule = "0 0 29 2 *"
			return b
		}(),
		"backupconfiguration every minute": func() *BackupConfiguration {
			b := backupConfig()
			b.Spec.Schedule = "@every 1m"
			return b
		}(),
		"backupconfiguration name at the limit": func() *BackupConfiguration {
			b := backupConfig()
			b.Name = strings.Repeat("a", MaxBackupConfigurationName)
			return b
		}(),
		"backupsession": backupSession(),
		"backupsession generateName": func() *BackupSession {
			s := backupSession()
			s.Name, s.GenerateName = "", "nightly-"
			return s
		}(),
		"restoresession latest": func() *RestoreSession { r := restoreSession(); r.Spec.Snapshot = ""; return r }(),
		"restoresession by id":  restoreSession(),
		"restoresession appbinding": func() *RestoreSession {
			r := restoreSession()
			r.Spec.Target = Target{Ref: &TargetRef{Name: "sample-redis"}}
			return r
		}(),
		"restoresession filtered": func() *RestoreSession {
			r := restoreSession()
			r.Spec.Databases, r.Spec.KeyPattern, r.Spec.ConflictPolicy = []int32{0, 3}, "user:*", ConflictReplace
			return r
		}(),
	}
	for name, obj := range tests {
		t.Run(name, func(t *testing.T) {
			obj.Default()
			if errs := obj.Validate(); len(errs) != 0 {
				t.Fatalf("want valid, got %v", messages(errs))
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	b := backupConfig()
	b.Spec.Target = Target{Redis: &RedisTarget{Service: &ServiceTarget{Name: "redis"}, AuthSecret: &AuthSecret{Name: "a"},
		TLS: &RedisTLS{CASecret: &SecretKeySelector{Name: "ca"}}}}
	b.Spec.TimeOut = ""
	b.Default()
	want := &BackupConfiguration{ObjectMeta: b.ObjectMeta, Spec: BackupConfigurationSpec{
		Schedule: "0 2 * * *", Repository: RepositoryRef{Name: "gcs-repo"},
		Target: Target{Redis: &RedisTarget{Service: &ServiceTarget{Name: "redis", Port: 6379}, Mode: RedisModeStandalone,
			AuthSecret: &AuthSecret{Name: "a", UsernameKey: "username", PasswordKey: "password"},
			TLS:        &RedisTLS{CASecret: &SecretKeySelector{Name: "ca", Key: "ca.crt"}}}},
		RetentionPolicy:    b.Spec.RetentionPolicy,
		BackupHistoryLimit: i32(1), FailedBackupHistoryLimit: i32(3), TimeOut: "1h",
		RetryConfig: b.Spec.RetryConfig,
	}}
	if d := cmp.Diff(want, b); d != "" {
		t.Errorf("BackupConfiguration defaults (-want +got):\n%s", d)
	}
	again := b.DeepCopy()
	again.Default()
	if d := cmp.Diff(b, again); d != "" {
		t.Errorf("Default is not idempotent:\n%s", d)
	}

	r := gcsRepo()
	r.Default()
	if r.Spec.Backend.GCS.Prefix != "demo/redis" || r.Spec.UsagePolicy.AllowedNamespaces.From != NamespacesFromSame {
		t.Errorf("repository defaults: prefix %q, usage %+v", r.Spec.Backend.GCS.Prefix, r.Spec.UsagePolicy)
	}
	rs := restoreSession()
	rs.Spec.Snapshot = ""
	rs.Spec.Target = Target{Redis: &RedisTarget{Service: &ServiceTarget{Name: "s"}, Mode: RedisModeSentinel, MasterName: "m"}}
	rs.Default()
	if rs.Spec.Snapshot != SnapshotLatest || rs.Spec.ConflictPolicy != ConflictFail || rs.Spec.TimeOut != "1h" || rs.Spec.Target.Redis.Service.Port != 26379 {
		t.Errorf("restoresession defaults: %+v", rs.Spec)
	}
	s := backupSession()
	s.Default()
	if s.Spec.Invoker.APIGroup != "stash.dev" || s.Spec.Invoker.Kind != "BackupConfiguration" {
		t.Errorf("backupsession defaults: %+v", s.Spec.Invoker)
	}
	ref := backupConfig()
	ref.Default()
	if *ref.Spec.Target.Ref != (TargetRef{APIVersion: AppBindingAPIVersion, Kind: AppBindingKind, Name: "sample-redis"}) {
		t.Errorf("target ref defaults: %+v", ref.Spec.Target.Ref)
	}
}

func TestInvalidObjects(t *testing.T) {
	repo := func(f func(*Repository)) object { r := gcsRepo(); f(r); return r }
	bc := func(f func(*BackupConfiguration)) object { b := backupConfig(); f(b); return b }
	redis := func(f func(*RedisTarget)) object {
		b := backupConfig()
		b.Spec.Target = inlineTarget()
		f(b.Spec.Target.Redis)
		return b
	}
	bs := func(f func(*BackupSession)) object { s := backupSession(); f(s); return s }
	rs := func(f func(*RestoreSession)) object { r := restoreSession(); f(r); return r }
	long := strings.Repeat("a", 40)

	tests := []struct {
		name string
		obj  object
		want []string
	}{
		// Continuous backup
		{"continuous segment interval too short", bc(func(b *BackupConfiguration) {
			b.Spec.Continuous = &ContinuousBackup{Enabled: true, SegmentInterval: "100ms"}
		}), []string{`spec.continuous.segmentInterval: Invalid value: "100ms": must be a duration from 1s to 1h0m0s, such as "10s"`}},
		{"continuous base interval and window", bc(func(b *BackupConfiguration) {
			b.Spec.Continuous = &ContinuousBackup{Enabled: true, BaseInterval: "500ms", Window: "0s"}
		}), []string{`spec.continuous.baseInterval: Invalid value: "500ms": must be a duration of at least 1s, such as "6h"`,
			`spec.continuous.window: Invalid value: "0s": must be a duration of at least 1s, such as "6h"`}},
		{"continuous of a cluster", bc(func(b *BackupConfiguration) {
			b.Spec.Target = Target{Redis: &RedisTarget{Address: "redis:6379", Mode: RedisModeCluster}}
			b.Spec.Continuous = &ContinuousBackup{Enabled: true}
		}), []string{"spec.continuous.enabled: Forbidden: continuous backup follows one server or a Sentinel's master; target.redis.mode cluster is not supported yet"}},
		// Repository
		{"repository without backend", repo(func(r *Repository) { r.Spec.Backend.GCS = nil }),
			[]string{"spec.backend: Required value: must set exactly one of local, s3, gcs, azure"}},
		{"repository with two backends", repo(func(r *Repository) { r.Spec.Backend.S3 = s3Repo().Spec.Backend.S3 }),
			[]string{"spec.backend: Forbidden: must set exactly one of local, s3, gcs, azure; found s3, gcs"}},
		{"repository without storage secret", repo(func(r *Repository) { r.Spec.Backend.StorageSecretName = "" }),
			[]string{"spec.backend.storageSecretName: Required value: every repository is encrypted: name the Secret that holds RESTIC_PASSWORD and the backend's credentials"}},
		{"repository with bad storage secret name", repo(func(r *Repository) { r.Spec.Backend.StorageSecretName = "Gcs_Secret" }),
			[]string{`spec.backend.storageSecretName: Invalid value: "Gcs_Secret": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`}},
		{"gcs without bucket", repo(func(r *Repository) { r.Spec.Backend.GCS.Bucket = "" }),
			[]string{"spec.backend.gcs.bucket: Required value: the bucket that holds the snapshots"}},
		{"gcs bucket with capitals", repo(func(r *Repository) { r.Spec.Backend.GCS.Bucket = "My-Bucket" }),
			[]string{`spec.backend.gcs.bucket: Invalid value: "My-Bucket": must be 3-63 characters of lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or digit`}},
		{"gcs bucket too short", repo(func(r *Repository) { r.Spec.Backend.GCS.Bucket = "b" }),
			[]string{`spec.backend.gcs.bucket: Invalid value: "b": must be 3-63 characters of lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or digit`}},
		{"gcs prefix with dot-dot", repo(func(r *Repository) { r.Spec.Backend.GCS.Prefix = "a/../b" }),
			[]string{`spec.backend.gcs.prefix: Invalid value: "a/../b": must not contain '.' or '..' segments`}},
		{"gcs prefix with empty segment", repo(func(r *Repository) { r.Spec.Backend.GCS.Prefix = "a//b" }),
			[]string{`spec.backend.gcs.prefix: Invalid value: "a//b": must not contain empty path segments ('//')`}},
		{"s3 bucket with underscore", repo(func(r *Repository) {
			r.Spec.Backend = s3Repo().Spec.Backend
			r.Spec.Backend.S3.Bucket = "my_bucket"
		}), []string{`spec.backend.s3.bucket: Invalid value: "my_bucket": must be 3-63 characters of lowercase letters, digits, '-' and '.', starting and ending with a letter or digit`}},
		{"s3 endpoint without scheme", repo(func(r *Repository) {
			r.Spec.Backend = s3Repo().Spec.Backend
			r.Spec.Backend.S3.Endpoint = "minio:9000"
		}), []string{`spec.backend.s3.endpoint: Invalid value: "minio:9000": must start with http:// or https://`}},
		{"s3 endpoint with path", repo(func(r *Repository) {
			r.Spec.Backend = s3Repo().Spec.Backend
			r.Spec.Backend.S3.Endpoint = "https://minio:9000/stash"
		}), []string{`spec.backend.s3.endpoint: Invalid value: "https://minio:9000/stash": must not have a path; put the bucket in bucket and the directory in prefix`}},
		{"s3 endpoint with credentials", repo(func(r *Repository) {
			r.Spec.Backend = s3Repo().Spec.Backend
			r.Spec.Backend.S3.Endpoint = "https://AKIAEXAMPLE:s3cr3t@minio:9000"
		}), []string{`spec.backend.s3.endpoint: Invalid value: "https://redacted@minio:9000": must not hold a user name or password; put the access keys in the storage Secret (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)`}},
		{"s3 endpoint of the metadata service", repo(func(r *Repository) {
			r.Spec.Backend = s3Repo().Spec.Backend
			r.Spec.Backend.S3.Endpoint = "http://169.254.169.254"
		}), []string{`spec.backend.s3.endpoint: Invalid value: "http://169.254.169.254": is a link-local address, where the cloud's instance metadata service answers, not an S3 endpoint`}},
		{"s3 endpoint of the IPv6 metadata service", repo(func(r *Repository) {
			r.Spec.Backend = s3Repo().Spec.Backend
			r.Spec.Backend.S3.Endpoint = "http://[fd00:ec2::254]:80"
		}), []string{`spec.backend.s3.endpoint: Invalid value: "http://[fd00:ec2::254]:80": is a link-local address, where the cloud's instance metadata service answers, not an S3 endpoint`}},
		{"s3 bad region", repo(func(r *Repository) {
			r.Spec.Backend = s3Repo().Spec.Backend
			r.Spec.Backend.S3.Region = "US East"
		}), []string{`spec.backend.s3.region: Invalid value: "US East": must look like us-east-1`}},
		{"azure container with double dash", repo(func(r *Repository) {
			r.Spec.Backend = azureRepo().Spec.Backend
			r.Spec.Backend.Azure.Container = "stash--backups"
		}), []string{`spec.backend.azure.container: Invalid value: "stash--backups": must be 3-63 characters of lowercase letters, digits and single '-', starting and ending with a letter or digit`}},
		{"local without volume", repo(func(r *Repository) {
			r.Spec.Backend = localRepo().Spec.Backend
			r.Spec.Backend.Local.VolumeSource = corev1.VolumeSource{}
		}), []string{"spec.backend.local: Required value: must set a volume source (hostPath, persistentVolumeClaim, nfs, ...) for the repository"}},
		{"local relative mount path", repo(func(r *Repository) {
			r.Spec.Backend = localRepo().Spec.Backend
			r.Spec.Backend.Local.MountPath = "backups"
		}), []string{`spec.backend.local.mountPath: Invalid value: "backups": must be an absolute path`}},
		{"local subPath escapes", repo(func(r *Repository) {
			r.Spec.Backend = localRepo().Spec.Backend
			r.Spec.Backend.Local.SubPath = "../etc"
		}), []string{`spec.backend.local.subPath: Invalid value: "../etc": must not contain '..'`}},
		{"local with wipeOut", repo(func(r *Repository) {
			r.Spec.Backend = localRepo().Spec.Backend
			r.Spec.WipeOut = true
		}), []string{"spec.wipeOut: Forbidden: not supported for local backends: the controller cannot reach a volume mounted only into the Jobs"}},
		{"usage policy selector missing", repo(func(r *Repository) {
			r.Spec.UsagePolicy = &UsagePolicy{AllowedNamespaces: AllowedNamespaces{From: NamespacesFromSelector}}
		}), []string{"spec.usagePolicy.allowedNamespaces.selector: Required value: must be set when from is Selector"}},
		{"usage policy unknown from", repo(func(r *Repository) {
			r.Spec.UsagePolicy = &UsagePolicy{AllowedNamespaces: AllowedNamespaces{From: "Some"}}
		}), []string{`spec.usagePolicy.allowedNamespaces.from: Unsupported value: "Some": supported values: "Same", "All", "Selector"`}},

		// BackupConfiguration
		{"bc without schedule", bc(func(b *BackupConfiguration) { b.Spec.Schedule = "" }),
			[]string{`spec.schedule: Required value: a cron expression such as "0 */6 * * *" or "@daily"`}},
		{"bc with bad schedule", bc(func(b *BackupConfiguration) { b.Spec.Schedule = "61 * * * *" }),
			[]string{`spec.schedule: Invalid value: "61 * * * *": not a valid cron expression: end of range (61) above maximum (59): 61`}},
		{"bc with six-field schedule", bc(func(b *BackupConfiguration) { b.Spec.Schedule = "0 0 2 * * *" }),
			[]string{`spec.schedule: Invalid value: "0 0 2 * * *": not a valid cron expression: expected exactly 5 fields, found 6: [0 0 2 * * *]`}},
		{"bc schedule that never fires", bc(func(b *BackupConfiguration) { b.Spec.Schedule = "0 0 30 2 *" }),
			[]string{`spec.schedule: Invalid value: "0 0 30 2 *": never fires: no date matches it (check the day of the month against the month)`}},
		{"bc schedule every nanosecond", bc(func(b *BackupConfiguration) { b.Spec.Schedule = "@every 1ns" }),
			[]string{`spec.schedule: Invalid value: "@every 1ns": runs more often than every 1m0s; a backup every few seconds would start before the last one ends (for continuous backup set spec.continuous)`}},
		{"bc schedule every 30 seconds", bc(func(b *BackupConfiguration) { b.Spec.Schedule = "@every 30s" }),
			[]string{`spec.schedule: Invalid value: "@every 30s": runs more often than every 1m0s; a backup every few seconds would start before the last one ends (for continuous backup set spec.continuous)`}},
		{"bc with time zone", bc(func(b *BackupConfiguration) { b.Spec.Schedule = "CRON_TZ=Europe/Paris 0 2 * * *" }),
			[]string{`spec.schedule: Invalid value: "CRON_TZ=Europe/Paris 0 2 * * *": a time zone in the schedule is not supported: set spec.timeZone (an IANA name such as "Europe/Berlin")`}},
		{"bc name too long for its CronJob", bc(func(b *BackupConfiguration) { b.Name = long }),
			[]string{`metadata.name: Invalid value: "` + long + `": must be no more than 38 characters, so that the names of the CronJobs and Jobs made from it stay within Kubernetes' limits`}},
		{"bc name not a DNS label", bc(func(b *BackupConfiguration) { b.Name = "nightly.backup" }),
			[]string{`metadata.name: Invalid value: "nightly.backup": must not contain dots`}},
		{"bc without repository", bc(func(b *BackupConfiguration) { b.Spec.Repository.Name = "" }),
			[]string{"spec.repository.name: Required value: the Repository that holds the snapshots"}},
		{"bc without target", bc(func(b *BackupConfiguration) { b.Spec.Target = Target{} }),
			[]string{"spec.target: Required value: must set exactly one of ref (an AppBinding) and redis (an inline endpoint)"}},
		{"bc with both targets", bc(func(b *BackupConfiguration) { b.Spec.Target.Redis = inlineTarget().Redis }),
			[]string{"spec.target: Forbidden: must set exactly one of ref (an AppBinding) and redis (an inline endpoint), not both"}},
		{"bc ref without name", bc(func(b *BackupConfiguration) { b.Spec.Target.Ref.Name = "" }),
			[]string{"spec.target.ref.name: Required value: the AppBinding of the Redis"}},
		{"bc ref to a StatefulSet", bc(func(b *BackupConfiguration) { b.Spec.Target.Ref.Kind = "StatefulSet" }),
			[]string{`spec.target.ref.kind: Unsupported value: "StatefulSet": supported values: "AppBinding"`}},
		{"bc negative keepLast", bc(func(b *BackupConfiguration) { b.Spec.RetentionPolicy.KeepLast = i32(-1) }),
			[]string{"spec.retentionPolicy.keepLast: Invalid value: -1: must be greater than or equal to 0"}},
		{"bc retention keeps nothing", bc(func(b *BackupConfiguration) { b.Spec.RetentionPolicy = &RetentionPolicy{Name: "none", Prune: true} }),
			[]string{"spec.retentionPolicy: Required value: must keep something: set at least one of keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly above 0 (a policy that keeps nothing would delete every snapshot)"}},
		{"bc retention all zero", bc(func(b *BackupConfiguration) {
			b.Spec.RetentionPolicy = &RetentionPolicy{KeepLast: i32(0), KeepDaily: i32(0)}
		}),
			[]string{"spec.retentionPolicy: Required value: must keep something: set at least one of keepLast, keepHourly, keepDaily, keepWeekly, keepMonthly, keepYearly above 0 (a policy that keeps nothing would delete every snapshot)"}},
		{"bc timeOut not a duration", bc(func(b *BackupConfiguration) { b.Spec.TimeOut = "2 hours" }),
			[]string{`spec.timeOut: Invalid value: "2 hours": must be a duration such as "30m" or "2h"`}},
		{"bc timeOut too short", bc(func(b *BackupConfiguration) { b.Spec.TimeOut = "10ms" }),
			[]string{`spec.timeOut: Invalid value: "10ms": must be at least 1s`}},
		{"bc negative history", bc(func(b *BackupConfiguration) { b.Spec.BackupHistoryLimit = i32(-2) }),
			[]string{"spec.backupHistoryLimit: Invalid value: -2: must be greater than or equal to 0"}},
		{"bc too many retries", bc(func(b *BackupConfiguration) { b.Spec.RetryConfig.MaxRetry = 50 }),
			[]string{"spec.retryConfig.maxRetry: Invalid value: 50: must be between 0 and 10"}},
		{"bc retry delay not a duration", bc(func(b *BackupConfiguration) { b.Spec.RetryConfig.Delay = "soon" }),
			[]string{`spec.retryConfig.delay: Invalid value: "soon": must be a duration such as "30s" or "5m"`}},
		{"bc bad node selector", bc(func(b *BackupConfiguration) {
			b.Spec.RuntimeSettings = &RuntimeSettings{NodeSelector: map[string]string{"disk": "fast ssd"}}
		}), []string{`spec.runtimeSettings.nodeSelector: Invalid value: "fast ssd": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`}},

		// Inline Redis target
		{"redis without address or service", redis(func(r *RedisTarget) { r.Address = "" }),
			[]string{"spec.target.redis: Required value: must set exactly one of address and service"}},
		{"redis with address and service", redis(func(r *RedisTarget) { r.Service = &ServiceTarget{Name: "redis"} }),
			[]string{"spec.target.redis.address: Forbidden: may not be set together with service"}},
		{"redis address without port", redis(func(r *RedisTarget) { r.Address = "redis.db.svc" }),
			[]string{`spec.target.redis.address: Invalid value: "redis.db.svc": must be host:port (such as redis.db.svc:6379) or an absolute unix socket path`}},
		{"redis address with URL scheme", redis(func(r *RedisTarget) { r.Address = "redis://:secret@redis:6379" }),
			[]string{`spec.target.redis.address: Invalid value: "redis://:secret@redis:6379": must be host:port or an absolute unix socket path, without a scheme; set tls for TLS and authSecret for credentials`}},
		{"redis address port out of range", redis(func(r *RedisTarget) { r.Address = "redis:70000" }),
			[]string{`spec.target.redis.address: Invalid value: "redis:70000": port must be a number between 1 and 65535`}},
		{"redis service port out of range", redis(func(r *RedisTarget) { r.Address = ""; r.Service = &ServiceTarget{Name: "redis", Port: 70000} }),
			[]string{"spec.target.redis.service.port: Invalid value: 70000: must be between 1 and 65535, inclusive"}},
		{"redis unknown mode", redis(func(r *RedisTarget) { r.Mode = "replicated" }),
			[]string{`spec.target.redis.mode: Unsupported value: "replicated": supported values: "standalone", "cluster", "sentinel"`}},
		{"sentinel without master name", redis(func(r *RedisTarget) { r.Mode = RedisModeSentinel }),
			[]string{"spec.target.redis.masterName: Required value: the Sentinel master set name (sentinel monitor <name> ...)"}},
		{"master name outside sentinel mode", redis(func(r *RedisTarget) { r.MasterName = "mymaster" }),
			[]string{"spec.target.redis.masterName: Forbidden: may only be set in sentinel mode"}},
		{"cluster with database 3", redis(func(r *RedisTarget) { r.Mode = RedisModeCluster; r.Databases = []int32{0, 3} }),
			[]string{"spec.target.redis.databases[1]: Invalid value: 3: a Redis Cluster has only database 0"}},
		{"duplicate database", redis(func(r *RedisTarget) { r.Databases = []int32{1, 1} }),
			[]string{"spec.target.redis.databases[1]: Duplicate value: 1"}},
		{"negative database", redis(func(r *RedisTarget) { r.Databases = []int32{-1} }),
			[]string{"spec.target.redis.databases[0]: Invalid value: -1: must be greater than or equal to 0"}},
		{"auth secret without name", redis(func(r *RedisTarget) { r.AuthSecret.Name = "" }),
			[]string{"spec.target.redis.authSecret.name: Required value: the Secret with the Redis password"}},
		{"auth secret bad key", redis(func(r *RedisTarget) { r.AuthSecret.PasswordKey = "pass word" }),
			[]string{`spec.target.redis.authSecret.passwordKey: Invalid value: "pass word": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')`}},
		{"tls CA secret without name", redis(func(r *RedisTarget) { r.TLS.CASecret.Name = "" }),
			[]string{"spec.target.redis.tls.caSecret.name: Required value: the Secret with the CA certificate"}},
		{"tls client cert secret without name", redis(func(r *RedisTarget) { r.TLS.ClientCertSecret = &corev1.LocalObjectReference{} }),
			[]string{"spec.target.redis.tls.clientCertSecret.name: Required value: the kubernetes.io/tls Secret with the client certificate"}},
		{"tls skip verify with a CA", redis(func(r *RedisTarget) { r.TLS.InsecureSkipVerify = true }),
			[]string{"spec.target.redis.tls.insecureSkipVerify: Forbidden: may not be set together with caSecret: a CA is only useful when the certificate is verified"}},

		// BackupSession
		{"session without invoker", bs(func(s *BackupSession) { s.Spec.Invoker.Name = "" }),
			[]string{"spec.invoker.name: Required value: the BackupConfiguration that this session runs"}},
		{"session invoked by a BackupBatch", bs(func(s *BackupSession) { s.Spec.Invoker.Kind = "BackupBatch" }),
			[]string{`spec.invoker.kind: Unsupported value: "BackupBatch": supported values: "BackupConfiguration"`}},
		{"session of another API group", bs(func(s *BackupSession) { s.Spec.Invoker.APIGroup = "stash.appscode.com" }),
			[]string{`spec.invoker.apiGroup: Unsupported value: "stash.appscode.com": supported values: "stash.dev"`}},
		{"session name too long for its Job", bs(func(s *BackupSession) { s.Name = strings.Repeat("s", 51) }),
			[]string{`metadata.name: Invalid value: "` + strings.Repeat("s", 51) + `": must be no more than 50 characters, so that the names of the CronJobs and Jobs made from it stay within Kubernetes' limits`}},
		{"session generateName too long", bs(func(s *BackupSession) { s.Name, s.GenerateName = "", strings.Repeat("g", 45)+"-" }),
			[]string{`metadata.generateName: Invalid value: "` + strings.Repeat("g", 45) + `": must be no more than 44 characters, so that the names of the CronJobs and Jobs made from it stay within Kubernetes' limits`}},
		{"session negative retryLeft", bs(func(s *BackupSession) { s.Spec.RetryLeft = -1 }),
			[]string{"spec.retryLeft: Invalid value: -1: must be greater than or equal to 0"}},

		// RestoreSession
		{"restore malformed snapshot", rs(func(r *RestoreSession) { r.Spec.Snapshot = "yesterday" }),
			[]string{`spec.snapshot: Invalid value: "yesterday": must be "latest" or a snapshot id such as 20261125T233500Z-3f9a1c (see: kubectl stash snapshots list REPOSITORY)`}},
		{"restore without repository", rs(func(r *RestoreSession) { r.Spec.Repository = RepositoryRef{} }),
			[]string{"spec.repository.name: Required value: the Repository that holds the snapshots"}},
		{"restore repository in bad namespace", rs(func(r *RestoreSession) { r.Spec.Repository.Namespace = "Prod" }),
			[]string{`spec.repository.namespace: Invalid value: "Prod": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`}},
		{"restore without target", rs(func(r *RestoreSession) { r.Spec.Target = Target{} }),
			[]string{"spec.target: Required value: must set exactly one of ref (an AppBinding) and redis (an inline endpoint)"}},
		{"restore unknown conflict policy", rs(func(r *RestoreSession) { r.Spec.ConflictPolicy = "Merge" }),
			[]string{`spec.conflictPolicy: Unsupported value: "Merge": supported values: "Fail", "Replace"`}},
		{"restore flush with key pattern", rs(func(r *RestoreSession) { r.Spec.FlushBeforeRestore = true; r.Spec.KeyPattern = "user:*" }),
			[]string{"spec.flushBeforeRestore: Forbidden: may not be set together with keyPattern: the flush would delete the keys that the pattern leaves out"}},
		{"restore to a point in time of some databases", rs(func(r *RestoreSession) {
			r.Spec.PointInTime = &metav1.Time{Time: time.Date(2026, 12, 2, 10, 15, 0, 0, time.UTC)}
			r.Spec.Databases = []int32{1}
		}), []string{pointInTimeSelection}},
		{"restore to a point in time of some keys", rs(func(r *RestoreSession) {
			r.Spec.PointInTime = &metav1.Time{Time: time.Date(2026, 12, 2, 10, 15, 0, 0, time.UTC)}
			r.Spec.KeyPattern = "user:*"
		}), []string{pointInTimeSelection}},
		{"restore to a point in time of the inline target's databases", rs(func(r *RestoreSession) {
			r.Spec.PointInTime = &metav1.Time{Time: time.Date(2026, 12, 2, 10, 15, 0, 0, time.UTC)}
			r.Spec.Target = inlineTarget()
			r.Spec.Target.Redis.Databases = []int32{0}
		}), []string{pointInTimeSelection}},
		{"restore bad timeOut", rs(func(r *RestoreSession) { r.Spec.TimeOut = "-5m" }),
			[]string{`spec.timeOut: Invalid value: "-5m": must be at least 1s`}},
		{"restore name too long for its Job", rs(func(r *RestoreSession) { r.Name = strings.Repeat("r", 50) }),
			[]string{`metadata.name: Invalid value: "` + strings.Repeat("r", 50) + `": must be no more than 49 characters, so that the names of the CronJobs and Jobs made from it stay within Kubernetes' limits`}},
		{"restore without name", rs(func(r *RestoreSession) { r.Name = "" }),
			[]string{"metadata.name: Required value: name or generateName is required"}},
	}
	if len(tests) < 40 {
		t.Fatalf("only %d invalid cases", len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.obj.Default()
			if d := cmp.Diff(tt.want, messages(tt.obj.Validate())); d != "" {
				t.Errorf("errors (-want +got):\n%s", d)
			}
		})
	}
}

// pointInTimeSelection is admission's words for CheckPointInTimeSelection.
const pointInTimeSelection = "spec.pointInTime: Forbidden: a restore to a point in time replays every command of the journal: it cannot select databases or keys: remove databases, keyPattern and target.redis.databases, or restore a snapshot instead"

func TestImmutableFields(t *testing.T) {
	old := gcsRepo()
	moved := gcsRepo()
	moved.Spec.Backend.GCS.Bucket = "other-bucket"
	if d := cmp.Diff([]string{"spec.backend: Forbidden: the backend of a Repository cannot change (only storageSecretName can); create a new Repository instead"},
		messages(moved.ValidateUpdate(old))); d != "" {
		t.Errorf("repository backend change (-want +got):\n%s", d)
	}
	rotated := gcsRepo()
	rotated.Spec.Backend.StorageSecretName = "gcs-secret-2"
	if errs := rotated.ValidateUpdate(old); len(errs) != 0 {
		t.Errorf("changing the storage secret must be allowed, got %v", messages(errs))
	}

	s := backupSession()
	s2 := backupSession()
	s2.Spec.Invoker.Name = "other"
	if d := cmp.Diff([]string{"spec.invoker: Forbidden: cannot change; trigger a new BackupSession instead"}, messages(s2.ValidateUpdate(s))); d != "" {
		t.Errorf("session invoker change (-want +got):\n%s", d)
	}
	r := restoreSession()
	r2 := restoreSession()
	r2.Spec.Snapshot = SnapshotLatest
	if d := cmp.Diff([]string{"spec: Forbidden: a RestoreSession runs once and its spec cannot change; create a new RestoreSession instead"}, messages(r2.ValidateUpdate(r))); d != "" {
		t.Errorf("restore spec change (-want +got):\n%s", d)
	}
	b := backupConfig()
	b2 := backupConfig()
	b2.Spec.Paused, b2.Spec.Schedule = true, "@hourly"
	if errs := b2.ValidateUpdate(b); len(errs) != 0 {
		t.Errorf("pausing and rescheduling must be allowed, got %v", messages(errs))
	}
}

func TestBackendURL(t *testing.T) {
	tests := map[string]struct {
		repo *Repository
		want string
	}{
		"gcs":   {gcsRepo(), "gs://stash-backups/demo/redis"},
		"s3":    {s3Repo(), "s3://stash/redis?endpoint=http%3A%2F%2Fminio.storage%3A9000&region=us-east-1"},
		"azure": {azureRepo(), "azblob://stash-backups/redis"},
		"local": {localRepo(), "file:///backups/redis"},
	}
	for name, tt := range tests {
		if got := tt.repo.Spec.Backend.URL(); got != tt.want {
			t.Errorf("%s: URL() = %q, want %q", name, got, tt.want)
		}
	}
}
