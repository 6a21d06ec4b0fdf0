package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Fixture builders: each returns a valid object, which a test case then breaks in one way.

func i32(v int32) *int32 { return &v }

func meta(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: "db"} }

func gcsRepo() *Repository {
	return &Repository{ObjectMeta: meta("gcs-repo"), Spec: RepositorySpec{Backend: Backend{
		StorageSecretName: "gcs-secret",
		GCS:               &GCSSpec{Bucket: "stash-backups", Prefix: "/demo/redis/"},
	}}}
}

func s3Repo() *Repository {
	return &Repository{ObjectMeta: meta("s3-repo"), Spec: RepositorySpec{Backend: Backend{
		StorageSecretName: "s3-secret",
		S3:                &S3Spec{Endpoint: "http://minio.storage:9000", Bucket: "stash", Prefix: "redis", Region: "us-east-1"},
	}}}
}

func azureRepo() *Repository {
	return &Repository{ObjectMeta: meta("azure-repo"), Spec: RepositorySpec{Backend: Backend{
		StorageSecretName: "azure-secret",
		Azure:             &AzureSpec{Container: "stash-backups", Prefix: "redis"},
	}}}
}

func localRepo() *Repository {
	return &Repository{ObjectMeta: meta("local-repo"), Spec: RepositorySpec{Backend: Backend{
		StorageSecretName: "local-secret",
		Local: &LocalSpec{
			VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/backups"}},
			MountPath:    "/backups", SubPath: "redis",
		},
	}}}
}

func inlineTarget() Target {
	return Target{Redis: &RedisTarget{
		Address:    "redis.db.svc:6379",
		AuthSecret: &AuthSecret{Name: "redis-auth"},
		TLS:        &RedisTLS{CASecret: &SecretKeySelector{Name: "redis-ca"}, ServerName: "redis.db.svc"},
	}}
}

func backupConfig() *BackupConfiguration {
	return &BackupConfiguration{ObjectMeta: meta("nightly"), Spec: BackupConfigurationSpec{
		Schedule:        "0 2 * * *",
		Repository:      RepositoryRef{Name: "gcs-repo"},
		Target:          Target{Ref: &TargetRef{Name: "sample-redis"}},
		RetentionPolicy: &RetentionPolicy{Name: "keep", KeepLast: i32(5), KeepDaily: i32(7), Prune: true},
		TimeOut:         "30m",
		RetryConfig:     &RetryConfig{MaxRetry: 2, Delay: "1m"},
	}}
}

func backupSession() *BackupSession {
	return &BackupSession{ObjectMeta: meta("nightly-x7k2p"), Spec: BackupSessionSpec{Invoker: BackupInvokerRef{Name: "nightly"}}}
}

func restoreSession() *RestoreSession {
	return &RestoreSession{ObjectMeta: meta("restore-1"), Spec: RestoreSessionSpec{
		Repository: RepositoryRef{Name: "gcs-repo"},
		Target:     inlineTarget(),
		Snapshot:   "20261125T233500Z-3f9a1c",
	}}
}
