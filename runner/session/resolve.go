// Package session is the runner's in-cluster mode: it reads a BackupSession or
// RestoreSession, resolves its Repository, storage Secret and Redis target through the
// Kubernetes API, runs the backup or restore with the same library the CLI uses, and
// writes the result into the session's status. It also implements `trigger`, which the
// CronJob runs to start a BackupSession.
//
// Secrets are read through the API (the runner's Role names exactly the Secrets it may
// read), so no secret value appears in the Job's spec, arguments or environment.
package session

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/redisconn"
)

// Storage is a resolved repository: its URL, the repository password and the storage
// Secret's other keys (cloud credentials) as an environment-like map.
type Storage struct {
	Repository *v1alpha1.Repository
	URL        string
	Password   string
	Env        map[string]string
}

// ResolveRepository reads the Repository ref names (in namespace ns unless ref says
// otherwise) and its storage Secret.
func ResolveRepository(ctx context.Context, c client.Reader, ns string, ref v1alpha1.RepositoryRef) (*Storage, error) {
	repoNS := ref.Namespace
	if repoNS == "" {
		repoNS = ns
	}
	repo := &v1alpha1.Repository{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: repoNS, Name: ref.Name}, repo); err != nil {
		return nil, fmt.Errorf("read Repository %s/%s: %w", repoNS, ref.Name, err)
	}
	s, err := readSecret(ctx, c, repoNS, repo.Spec.Backend.StorageSecretName, "storage Secret of Repository "+repo.Name)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for k, v := range s.Data {
		env[k] = string(v)
	}
	var password string
	for _, k := range v1alpha1.PasswordSecretKeys {
		if password = env[k]; password != "" {
			break
		}
	}
	if password == "" {
		return nil, fmt.Errorf("storage Secret %s/%s has no RESTIC_PASSWORD (or ENCRYPTION_PASSWORD) key: every repository is encrypted", repoNS, s.Name)
	}
	u := repo.Spec.Backend.URL()
	if u == "" {
		return nil, fmt.Errorf("Repository %s/%s has no backend", repoNS, repo.Name)
	}
	return &Storage{Repository: repo, URL: u, Password: password, Env: env}, nil
}

func readSecret(ctx context.Context, c client.Reader, ns, name, what string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s)
	switch {
	case apierrors.IsNotFound(err):
		return nil, fmt.Errorf("%s: Secret %q not found in namespace %q", what, name, ns)
	case apierrors.IsForbidden(err):
		return nil, fmt.Errorf("%s: the runner may not read Secret %s/%s (the controller grants access to the Secrets that BackupConfigurations, RestoreSessions and Repositories of the namespace name): %w", what, ns, name, err)
	case err != nil:
		return nil, fmt.Errorf("%s: read Secret %s/%s: %w", what, ns, name, err)
	}
	return s, nil
}

// Target is a resolved Redis endpoint.
type Target struct {
	Redis redisconn.Options
	// Databases limits the databases, from the inline target.
	Databases []int
	// Warnings to print, such as a disabled certificate check.
	Warnings []string
	// Sentinel is set in sentinel mode: Redis then holds the data nodes' credentials.
	Sentinel *redisconn.Sentinel
	// Mode is "standalone" or "cluster" when the target names one, for the runner to check.
	Mode string
	// ReadFromReplica backs up from replicas (spec.target.readFromReplica).
	ReadFromReplica bool
	// ConsistentCut and CutPause back a cluster up at one instant (spec.target.consistentCut).
	ConsistentCut bool
	CutPause      time.Duration
}

// ResolveTarget turns a Target (an AppBinding or an inline endpoint) into connection options.
func ResolveTarget(ctx context.Context, c client.Reader, ns string, t *v1alpha1.Target) (*Target, error) {
	var out *Target
	var err error
	switch {
	case t.Redis != nil:
		out, err = resolveInline(ctx, c, ns, t.Redis)
	case t.Ref != nil:
		out, err = resolveAppBinding(ctx, c, ns, t.Ref)
	default:
		return nil, errors.New("the target names neither an AppBinding nor an inline Redis")
	}
	if err != nil {
		return nil, err
	}
	out.ReadFromReplica = t.ReadFromReplica
	if c := t.ConsistentCut; c != nil && c.Enabled {
		out.ConsistentCut = true
		if c.MaxPause != nil {
			out.CutPause = c.MaxPause.Duration
		}
	}
	return out, nil
}

// SentinelPasswordKey is the key of the Redis auth Secret that holds the Sentinel's password, if
// it differs from the data nodes' password.
const SentinelPasswordKey = "REDIS_SENTINEL_PASSWORD"

func resolveInline(ctx context.Context, c client.Reader, ns string, r *v1alpha1.RedisTarget) (*Target, error) {
	out := &Target{}
	var sentinelPassword string
	switch {
	case len(r.Address) > 0 && r.Address[0] == '/':
		out.Redis.Network, out.Redis.Addr = "unix", r.Address
	case r.Address != "":
		out.Redis.Network, out.Redis.Addr = "tcp", r.Address
	case r.Service != nil:
		port := r.Service.Port
		if port == 0 {
			port = v1alpha1.DefaultRedisPort
		}
		out.Redis.Network, out.Redis.Addr = "tcp", net.JoinHostPort(r.Service.Name+"."+ns+".svc", strconv.Itoa(int(port)))
	}
	// Cluster mode needs only the address of any node: the masters are discovered.
	if r.Mode == v1alpha1.RedisModeCluster || r.Mode == v1alpha1.RedisModeStandalone {
		out.Mode = string(r.Mode)
	}
	for _, db := range r.Databases {
		out.Databases = append(out.Databases, int(db))
	}
	if a := r.AuthSecret; a != nil {
		s, err := readAuthSecret(ctx, c, ns, a, &out.Redis)
		if err != nil {
			return nil, err
		}
		if v := s.Data[SentinelPasswordKey]; len(v) > 0 {
			sentinelPassword = string(v)
		}
	}
	if r.Mode == v1alpha1.RedisModeSentinel {
		if r.MasterName == "" {
			return nil, errors.New("redis mode sentinel needs masterName (the Sentinel master set name)")
		}
		out.Sentinel = &redisconn.Sentinel{Addrs: []string{out.Redis.Addr}, MasterName: r.MasterName,
			Username: out.Redis.Username, Password: out.Redis.Password}
		if sentinelPassword != "" {
			out.Sentinel.Username, out.Sentinel.Password = "", sentinelPassword
		}
	}
	if t := r.TLS; t != nil {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: hostOf(out.Redis.Addr), InsecureSkipVerify: t.InsecureSkipVerify}
		if t.ServerName != "" {
			cfg.ServerName = t.ServerName
			out.Redis.ServerNameFixed = true
		}
		if t.InsecureSkipVerify {
			out.Warnings = append(out.Warnings, "WARNING: TLS certificate verification of Redis is OFF (spec.target.redis.tls.insecureSkipVerify): anyone on the network path can read the data")
		}
		if t.CASecret != nil {
			s, err := readSecret(ctx, c, ns, t.CASecret.Name, "Redis CA Secret")
			if err != nil {
				return nil, err
			}
			key := orDefault(t.CASecret.Key, v1alpha1.DefaultCAKey)
			if cfg.RootCAs, err = certPool(s.Data[key]); err != nil {
				return nil, fmt.Errorf("Redis CA Secret %s/%s key %q: %w", ns, t.CASecret.Name, key, err)
			}
		}
		if t.ClientCertSecret != nil {
			if err := addClientCert(ctx, c, ns, t.ClientCertSecret.Name, cfg); err != nil {
				return nil, err
			}
		}
		out.Redis.TLS = cfg
	}
	return out, nil
}

func resolveAppBinding(ctx context.Context, c client.Reader, ns string, ref *v1alpha1.TargetRef) (*Target, error) {
	name := ref.Name
	ab := &unstructured.Unstructured{}
	ab.SetAPIVersion(v1alpha1.AppBindingAPIVersion)
	ab.SetKind(v1alpha1.AppBindingKind)
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, ab); err != nil {
		return nil, fmt.Errorf("read AppBinding %s/%s: %w", ns, name, err)
	}
	out := &Target{}
	str := func(path ...string) string {
		v, _, _ := unstructured.NestedString(ab.Object, path...)
		return v
	}
	// KubeDB gives a RedisSentinel an AppBinding of its own (type kubedb.com/redissentinel,
	// the Sentinel's Service and auth Secret), which names no master set: the reference
	// gives it (masterName), else backing it up as a Redis server would fail on its first
	// command, so say what to set.
	sentinel := strings.HasSuffix(str("spec", "type"), "/redissentinel")
	if sentinel && ref.MasterName == "" {
		return nil, fmt.Errorf("AppBinding %s/%s is of a Redis Sentinel (type %s), which names no master set: "+
			"set target.ref.masterName (and target.ref.authSecret when the data nodes' password differs from the Sentinel's), "+
			"or target the AppBinding of the Redis database it monitors", ns, name, str("spec", "type"))
	}
	if !sentinel && ref.MasterName != "" {
		return nil, fmt.Errorf("AppBinding %s/%s is not of a Redis Sentinel (type %q): target.ref.masterName applies only to one", ns, name, str("spec", "type"))
	}
	scheme := "redis"
	switch raw := str("spec", "clientConfig", "url"); {
	case raw != "":
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("AppBinding %s/%s: clientConfig.url %q is not a redis:// URL", ns, name, redisconn.RedactURL(raw))
		}
		scheme = u.Scheme
		out.Redis.Network, out.Redis.Addr = "tcp", u.Host
		if u.Port() == "" {
			out.Redis.Addr = net.JoinHostPort(u.Hostname(), strconv.Itoa(int(v1alpha1.DefaultRedisPort)))
		}
	default:
		svc := str("spec", "clientConfig", "service", "name")
		if svc == "" {
			return nil, fmt.Errorf("AppBinding %s/%s has neither clientConfig.url nor clientConfig.service", ns, name)
		}
		port, _, _ := unstructured.NestedInt64(ab.Object, "spec", "clientConfig", "service", "port")
		if port == 0 {
			port = int64(v1alpha1.DefaultRedisPort)
		}
		if s := str("spec", "clientConfig", "service", "scheme"); s != "" {
			scheme = s
		}
		out.Redis.Network, out.Redis.Addr = "tcp", net.JoinHostPort(svc+"."+ns+".svc", strconv.FormatInt(port, 10))
	}
	if secret := str(v1alpha1.AppBindingSecretPath...); secret != "" {
		s, err := readSecret(ctx, c, ns, secret, "Secret of AppBinding "+name)
		if err != nil {
			return nil, err
		}
		out.Redis.Username, out.Redis.Password = string(s.Data[v1alpha1.DefaultUsernameKey]), string(s.Data[v1alpha1.DefaultPasswordKey])
	}
	if sentinel {
		out.Sentinel = &redisconn.Sentinel{Addrs: []string{out.Redis.Addr}, MasterName: ref.MasterName,
			Username: out.Redis.Username, Password: out.Redis.Password}
		if a := ref.AuthSecret; a != nil {
			if _, err := readAuthSecret(ctx, c, ns, a, &out.Redis); err != nil {
				return nil, err
			}
		}
	}
	caBundle := str("spec", "clientConfig", "caBundle")
	if scheme == "rediss" || caBundle != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: hostOf(out.Redis.Addr)}
		if sn := str("spec", "clientConfig", "serverName"); sn != "" {
			cfg.ServerName = sn
			out.Redis.ServerNameFixed = true
		}
		if caBundle != "" {
			pem, err := base64.StdEncoding.DecodeString(caBundle)
			if err != nil {
				return nil, fmt.Errorf("AppBinding %s/%s: clientConfig.caBundle is not base64: %w", ns, name, err)
			}
			if cfg.RootCAs, err = certPool(pem); err != nil {
				return nil, fmt.Errorf("AppBinding %s/%s: clientConfig.caBundle: %w", ns, name, err)
			}
		}
		if skip, _, _ := unstructured.NestedBool(ab.Object, "spec", "clientConfig", "insecureSkipTLSVerify"); skip {
			cfg.InsecureSkipVerify = true
			out.Warnings = append(out.Warnings, "WARNING: TLS certificate verification of Redis is OFF (AppBinding clientConfig.insecureSkipTLSVerify)")
		}
		if ts := str(v1alpha1.AppBindingTLSSecretPath...); ts != "" {
			if err := addClientCert(ctx, c, ns, ts, cfg); err != nil {
				return nil, err
			}
		}
		out.Redis.TLS = cfg
	}
	return out, nil
}

// readAuthSecret sets the username and password of o from the Secret a names and returns the
// Secret; a Secret without the password key is an error.
func readAuthSecret(ctx context.Context, c client.Reader, ns string, a *v1alpha1.AuthSecret, o *redisconn.Options) (*corev1.Secret, error) {
	s, err := readSecret(ctx, c, ns, a.Name, "Redis auth Secret")
	if err != nil {
		return nil, err
	}
	uk, pk := orDefault(a.UsernameKey, v1alpha1.DefaultUsernameKey), orDefault(a.PasswordKey, v1alpha1.DefaultPasswordKey)
	o.Username, o.Password = string(s.Data[uk]), string(s.Data[pk])
	if o.Password == "" {
		return nil, fmt.Errorf("Redis auth Secret %s/%s has no key %q", ns, a.Name, pk)
	}
	return s, nil
}

func addClientCert(ctx context.Context, c client.Reader, ns, name string, cfg *tls.Config) error {
	s, err := readSecret(ctx, c, ns, name, "Redis client certificate Secret")
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return fmt.Errorf("Redis client certificate Secret %s/%s: %w", ns, name, err)
	}
	cfg.Certificates = []tls.Certificate{cert}
	return nil
}

func certPool(pem []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("no PEM certificate found")
	}
	return pool, nil
}

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}
