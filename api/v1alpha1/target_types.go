package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Target is the Redis to back up or restore into: either a reference to an AppBinding (as
// KubeDB creates them) or an inline description of the Redis endpoint. Exactly one is set.
type Target struct {
	// Ref points to an AppBinding in the same namespace.
	// +optional
	Ref *TargetRef `json:"ref,omitempty"`
	// Redis describes the Redis endpoint directly.
	// +optional
	Redis *RedisTarget `json:"redis,omitempty"`
	// ReadFromReplica backs up from replicas instead of masters, sparing them the work: a
	// replica of each master of a Redis Cluster, or a replica that the Sentinel reports
	// healthy. Only for backups of cluster and sentinel targets (an AppBinding's mode is known
	// only at run time, when a standalone server fails the backup with the reason).
	// +optional
	ReadFromReplica bool `json:"readFromReplica,omitempty"`
	// ConsistentCut backs up a Redis Cluster at one instant: writes are paused on every
	// master (CLIENT PAUSE WRITE) until each has forked for a full resynchronization, then
	// resumed, so the snapshot holds every shard as it was at the same moment. Needs every
	// master to serve a replica (PSYNC); the backup fails otherwise. Only for backups of
	// cluster targets, read from the masters (not with readFromReplica).
	// +optional
	ConsistentCut *ConsistentCut `json:"consistentCut,omitempty"`
}

// ConsistentCut configures the consistent cut of a cluster backup.
type ConsistentCut struct {
	// Enabled takes the cluster backup as a consistent cut.
	Enabled bool `json:"enabled"`
	// MaxPause bounds how long writes stay paused on the masters (the pause's own timeout, so
	// a runner that dies cannot leave the cluster paused longer). A cut whose masters have
	// not all forked within it fails and resumes writes. At most 1m.
	// +kubebuilder:default="2s"
	// +optional
	MaxPause *metav1.Duration `json:"maxPause,omitempty"`
}

// TargetRef points to an AppBinding (appcatalog.appscode.com/v1alpha1).
type TargetRef struct {
	// APIVersion of the referent. Defaults to appcatalog.appscode.com/v1alpha1.
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`
	// Kind of the referent. Defaults to AppBinding, the only kind supported.
	// +optional
	Kind string `json:"kind,omitempty"`
	// Name of the AppBinding.
	Name string `json:"name,omitempty"`
	// MasterName is the Sentinel master set to back up or restore into, for an AppBinding of
	// a Redis Sentinel (KubeDB's type kubedb.com/redissentinel names the Sentinel's Service
	// and auth Secret, and no master set). The AppBinding's Secret then authenticates to the
	// Sentinel; AuthSecret, if set, to the data nodes.
	// +optional
	MasterName string `json:"masterName,omitempty"`
	// AuthSecret holds the data nodes' credentials when they differ from the AppBinding's
	// Secret (KubeDB gives a Redis and the RedisSentinel that monitors it separate auth
	// Secrets). Only with MasterName.
	// +optional
	AuthSecret *AuthSecret `json:"authSecret,omitempty"`
}

// AppBinding identity; the AppBinding is read as unstructured so that this API does not
// depend on KubeDB's Go modules.
const (
	AppBindingAPIVersion = "appcatalog.appscode.com/v1alpha1"
	AppBindingKind       = "AppBinding"
)

// Where an AppBinding names its Secrets (unstructured.NestedString paths): the Secret with
// the credentials (its keys DefaultUsernameKey and DefaultPasswordKey) and the one with the
// client certificate. The runner reads them and the controller grants the runner access to
// them; both use these paths.
var (
	AppBindingSecretPath    = []string{"spec", "secret", "name"}
	AppBindingTLSSecretPath = []string{"spec", "tlsSecret", "name"}
)

// RedisMode is how the target Redis is deployed.
// +kubebuilder:validation:Enum=standalone;cluster;sentinel
type RedisMode string

// Redis deployment modes.
const (
	RedisModeStandalone RedisMode = "standalone"
	RedisModeCluster    RedisMode = "cluster"
	RedisModeSentinel   RedisMode = "sentinel"
)

// RedisModes are the supported modes, for messages and shell completion.
var RedisModes = []RedisMode{RedisModeStandalone, RedisModeCluster, RedisModeSentinel}

// RedisTarget is a Redis endpoint given inline.
type RedisTarget struct {
	// Address is host:port, or a unix socket path starting with "/". Exactly one of Address
	// and Service is set. In sentinel mode it is the Sentinel's address.
	// +optional
	Address string `json:"address,omitempty"`
	// Service is a Service in the target's namespace that fronts Redis (or Sentinel).
	// +optional
	Service *ServiceTarget `json:"service,omitempty"`
	// Mode is standalone (default), cluster or sentinel.
	// +optional
	Mode RedisMode `json:"mode,omitempty"`
	// MasterName is the Sentinel master set name; required in sentinel mode.
	// +optional
	MasterName string `json:"masterName,omitempty"`
	// Databases limits the backup or restore to these logical databases; empty means every
	// database that has keys.
	// +optional
	Databases []int32 `json:"databases,omitempty"`
	// AuthSecret names a Secret with the password (and ACL username) of Redis.
	// +optional
	AuthSecret *AuthSecret `json:"authSecret,omitempty"`
	// TLS enables TLS to Redis. The server certificate is always verified unless
	// InsecureSkipVerify is set.
	// +optional
	TLS *RedisTLS `json:"tls,omitempty"`
}

// ServiceTarget is a Service name and port.
type ServiceTarget struct {
	// Name of the Service.
	Name string `json:"name,omitempty"`
	// Port of the Service. Defaults to 6379 (26379 in sentinel mode).
	// +optional
	Port int32 `json:"port,omitempty"`
}

// AuthSecret names a Secret and the keys in it that hold the credentials.
type AuthSecret struct {
	// Name of the Secret in the target's namespace.
	Name string `json:"name,omitempty"`
	// UsernameKey is the key holding the ACL username. Defaults to "username"; a missing key
	// means the default user.
	// +optional
	UsernameKey string `json:"usernameKey,omitempty"`
	// PasswordKey is the key holding the password. Defaults to "password".
	// +optional
	PasswordKey string `json:"passwordKey,omitempty"`
}

// RedisTLS configures TLS to Redis.
type RedisTLS struct {
	// CASecret holds the CA certificate that signed the server's certificate (key ca.crt by
	// default). Without it the system roots are used.
	// +optional
	CASecret *SecretKeySelector `json:"caSecret,omitempty"`
	// ClientCertSecret is a kubernetes.io/tls Secret (tls.crt, tls.key) for mutual TLS.
	// +optional
	ClientCertSecret *corev1.LocalObjectReference `json:"clientCertSecret,omitempty"`
	// ServerName overrides the name checked in the server certificate (SNI).
	// +optional
	ServerName string `json:"serverName,omitempty"`
	// InsecureSkipVerify turns off verification of the server certificate. Anyone on the
	// network path can then read the data. Every run logs a warning while it is set.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// SecretKeySelector names a key of a Secret in the same namespace.
type SecretKeySelector struct {
	// Name of the Secret.
	Name string `json:"name,omitempty"`
	// Key in the Secret. Defaults to ca.crt.
	// +optional
	Key string `json:"key,omitempty"`
}

// RepositoryRef points to a Repository, in the same namespace unless Namespace is set.
type RepositoryRef struct {
	// Name of the Repository.
	Name string `json:"name,omitempty"`
	// Namespace of the Repository. Defaults to the namespace of the referring object.
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// TaskRef is accepted for compatibility with Stash; the only task is the built-in Redis one.
type TaskRef struct {
	// Name of the task.
	// +optional
	Name string `json:"name,omitempty"`
}

// RuntimeSettings shape the Pods of the backup and restore Jobs.
type RuntimeSettings struct {
	// Resources of the runner container.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
	// NodeSelector of the Pod.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// Tolerations of the Pod.
	// +optional
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`
	// SecurityContext of the Pod. The runner runs as a non-root user by default.
	// +optional
	SecurityContext *corev1.PodSecurityContext `json:"securityContext,omitempty"`
	// ServiceAccountName overrides the service account the Job runs as.
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
}
