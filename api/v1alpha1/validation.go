package v1alpha1

import (
	"fmt"
	"net"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Validate returns every problem of the Repository, each with its field path.
func (r *Repository) Validate() field.ErrorList {
	errs := validateName(&r.ObjectMeta, 0)
	errs = append(errs, validateBackend(&r.Spec.Backend, field.NewPath("spec", "backend"))...)
	if r.Spec.WipeOut && r.Spec.Backend.Local != nil {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "wipeOut"),
			"not supported for local backends: the controller cannot reach a volume mounted only into the Jobs"))
	}
	if p := r.Spec.UsagePolicy; p != nil {
		errs = append(errs, validateAllowedNamespaces(&p.AllowedNamespaces, field.NewPath("spec", "usagePolicy", "allowedNamespaces"))...)
	}
	return errs
}

// ValidateUpdate validates r as a change of old: the backend's location cannot change,
// because the existing snapshots would be stranded. The storage Secret may change.
func (r *Repository) ValidateUpdate(old *Repository) field.ErrorList {
	errs := r.Validate()
	was, is := old.Spec.Backend, r.Spec.Backend
	was.StorageSecretName, is.StorageSecretName = "", ""
	if !apiequality.Semantic.DeepEqual(was, is) {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "backend"),
			"the backend of a Repository cannot change (only storageSecretName can); create a new Repository instead"))
	}
	return errs
}

func validateBackend(b *Backend, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	var set []string
	if b.Local != nil {
		set = append(set, "local")
		errs = append(errs, validateLocal(b.Local, p.Child("local"))...)
	}
	if b.S3 != nil {
		set = append(set, "s3")
		errs = append(errs, validateS3(b.S3, p.Child("s3"))...)
	}
	if b.GCS != nil {
		set = append(set, "gcs")
		errs = append(errs, validateBucket(b.GCS.Bucket, gcsBucket, p.Child("gcs", "bucket"))...)
		errs = append(errs, validatePrefix(b.GCS.Prefix, p.Child("gcs", "prefix"))...)
	}
	if b.Azure != nil {
		set = append(set, "azure")
		errs = append(errs, validateBucket(b.Azure.Container, azureContainer, p.Child("azure", "container"))...)
		errs = append(errs, validatePrefix(b.Azure.Prefix, p.Child("azure", "prefix"))...)
	}
	switch len(set) {
	case 0:
		errs = append(errs, field.Required(p, "must set exactly one of local, s3, gcs, azure"))
	case 1:
	default:
		errs = append(errs, field.Forbidden(p, fmt.Sprintf("must set exactly one of local, s3, gcs, azure; found %s", strings.Join(set, ", "))))
	}
	if b.StorageSecretName == "" {
		errs = append(errs, field.Required(p.Child("storageSecretName"),
			"every repository is encrypted: name the Secret that holds RESTIC_PASSWORD and the backend's credentials"))
	} else {
		errs = append(errs, dnsSubdomain(b.StorageSecretName, p.Child("storageSecretName"))...)
	}
	return errs
}

func validateLocal(l *LocalSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if apiequality.Semantic.DeepEqual(l.VolumeSource, corev1.VolumeSource{}) {
		errs = append(errs, field.Required(p, "must set a volume source (hostPath, persistentVolumeClaim, nfs, ...) for the repository"))
	}
	switch {
	case l.MountPath == "":
		errs = append(errs, field.Required(p.Child("mountPath"), "the directory where the repository volume is mounted in the Jobs"))
	case !path.IsAbs(l.MountPath):
		errs = append(errs, field.Invalid(p.Child("mountPath"), l.MountPath, "must be an absolute path"))
	case path.Clean(l.MountPath) == "/":
		errs = append(errs, field.Invalid(p.Child("mountPath"), l.MountPath, "must not be the root directory"))
	case hasDotDot(l.MountPath):
		errs = append(errs, field.Invalid(p.Child("mountPath"), l.MountPath, "must not contain '..'"))
	}
	if l.SubPath != "" {
		if path.IsAbs(l.SubPath) {
			errs = append(errs, field.Invalid(p.Child("subPath"), l.SubPath, "must be a relative path"))
		} else if hasDotDot(l.SubPath) {
			errs = append(errs, field.Invalid(p.Child("subPath"), l.SubPath, "must not contain '..'"))
		}
	}
	return errs
}

func hasDotDot(p string) bool {
	for _, s := range strings.Split(p, "/") {
		if s == ".." {
			return true
		}
	}
	return false
}

func validateS3(s *S3Spec, p *field.Path) field.ErrorList {
	errs := validateBucket(s.Bucket, s3Bucket, p.Child("bucket"))
	errs = append(errs, validatePrefix(s.Prefix, p.Child("prefix"))...)
	if s.Endpoint != "" {
		if msg := S3EndpointProblem(s.Endpoint); msg != "" {
			errs = append(errs, field.Invalid(p.Child("endpoint"), RedactURL(s.Endpoint), msg))
		}
	}
	if s.Region != "" && !regionPattern.MatchString(s.Region) {
		errs = append(errs, field.Invalid(p.Child("region"), s.Region, "must look like us-east-1"))
	}
	return errs
}

var regionPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// bucketRules are the naming rules of one provider's buckets.
type bucketRules struct {
	what    string
	pattern *regexp.Regexp
	rule    string
}

var (
	gcsBucket = bucketRules{"bucket", regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$`),
		"must be 3-63 characters of lowercase letters, digits, '-', '_' and '.', starting and ending with a letter or digit"}
	s3Bucket = bucketRules{"bucket", regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`),
		"must be 3-63 characters of lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"}
	azureContainer = bucketRules{"container", regexp.MustCompile(`^[a-z0-9]([a-z0-9]|-[a-z0-9]){2,62}$`),
		"must be 3-63 characters of lowercase letters, digits and single '-', starting and ending with a letter or digit"}
)

func validateBucket(name string, r bucketRules, p *field.Path) field.ErrorList {
	switch {
	case name == "":
		return field.ErrorList{field.Required(p, "the "+r.what+" that holds the snapshots")}
	case !r.pattern.MatchString(name):
		return field.ErrorList{field.Invalid(p, name, r.rule)}
	case strings.Contains(name, ".."):
		return field.ErrorList{field.Invalid(p, name, "must not contain '..'")}
	}
	return nil
}

func validatePrefix(prefix string, p *field.Path) field.ErrorList {
	if prefix == "" {
		return nil
	}
	if len(prefix) > 512 {
		return field.ErrorList{field.TooLong(p, "", 512)}
	}
	for _, seg := range strings.Split(strings.Trim(prefix, "/"), "/") {
		switch seg {
		case "":
			return field.ErrorList{field.Invalid(p, prefix, "must not contain empty path segments ('//')")}
		case ".", "..":
			return field.ErrorList{field.Invalid(p, prefix, "must not contain '.' or '..' segments")}
		}
	}
	if strings.ContainsFunc(prefix, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return field.ErrorList{field.Invalid(p, prefix, "must not contain control characters")}
	}
	return nil
}

func validateAllowedNamespaces(a *AllowedNamespaces, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch a.From {
	case NamespacesFromSame, NamespacesFromAll, "":
		if a.Selector != nil {
			errs = append(errs, field.Forbidden(p.Child("selector"), "may only be set when from is Selector"))
		}
	case NamespacesFromSelector:
		if a.Selector == nil {
			errs = append(errs, field.Required(p.Child("selector"), "must be set when from is Selector"))
		} else {
			errs = append(errs, metav1validation.ValidateLabelSelector(a.Selector, metav1validation.LabelSelectorValidationOptions{}, p.Child("selector"))...)
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("from"), a.From, []FromNamespaces{NamespacesFromSame, NamespacesFromAll, NamespacesFromSelector}))
	}
	return errs
}

// Validate returns every problem of the BackupConfiguration, each with its field path.
func (b *BackupConfiguration) Validate() field.ErrorList {
	s := &b.Spec
	sp := field.NewPath("spec")
	errs := validateName(&b.ObjectMeta, MaxBackupConfigurationName)
	errs = append(errs, validateSchedule(s.Schedule, sp.Child("schedule"))...)
	errs = append(errs, validateRepositoryRef(&s.Repository, sp.Child("repository"))...)
	errs = append(errs, s.Target.validate(sp.Child("target"))...)
	errs = append(errs, s.Target.ConsistentCut.validate(&s.Target, sp.Child("target", "consistentCut"))...)
	if r := s.Target.Redis; s.Target.ReadFromReplica && r != nil && r.Mode != RedisModeCluster && r.Mode != RedisModeSentinel {
		errs = append(errs, field.Invalid(sp.Child("target", "readFromReplica"), true,
			"needs target.redis.mode cluster or sentinel: a standalone server has no replicas to find (point the target at a replica instead)"))
	}
	if s.RetentionPolicy != nil {
		errs = append(errs, validateRetention(s.RetentionPolicy, sp.Child("retentionPolicy"))...)
	}
	errs = append(errs, nonNegative(s.BackupHistoryLimit, sp.Child("backupHistoryLimit"))...)
	errs = append(errs, nonNegative(s.FailedBackupHistoryLimit, sp.Child("failedBackupHistoryLimit"))...)
	errs = append(errs, validateTimeOut(s.TimeOut, sp.Child("timeOut"))...)
	if rc := s.RetryConfig; rc != nil {
		if rc.MaxRetry < 0 || rc.MaxRetry > maxRetry {
			errs = append(errs, field.Invalid(sp.Child("retryConfig", "maxRetry"), rc.MaxRetry, fmt.Sprintf("must be between 0 and %d", maxRetry)))
		}
		if rc.Delay != "" {
			if _, err := time.ParseDuration(rc.Delay); err != nil {
				errs = append(errs, field.Invalid(sp.Child("retryConfig", "delay"), rc.Delay, `must be a duration such as "30s" or "5m"`))
			}
		}
	}
	errs = append(errs, validateRuntimeSettings(s.RuntimeSettings, sp.Child("runtimeSettings"))...)
	errs = append(errs, s.Continuous.validate(&s.Target, sp.Child("continuous"))...)
	errs = append(errs, validateTimeZone(s.TimeZone, sp.Child("timeZone"))...)
	errs = append(errs, s.Hooks.validate(&s.Target, sp.Child("hooks"))...)
	return errs
}

// Warnings are what admission (and `kubectl stash validate`) says about a valid
// BackupConfiguration that may still not work where it is applied.
func (b *BackupConfiguration) Warnings() []string {
	if c := b.Spec.Continuous; c != nil && c.Enabled {
		return []string{"spec.continuous: the follower connects to the target as a replica (PSYNC); managed services " +
			"(ElastiCache, Azure Cache for Redis, Memorystore) refuse that, and the follower then reports the refusal in status.continuous.error"}
	}
	return nil
}

// Bounds of continuous.segmentInterval: shorter segments cost a storage write each; longer
// ones leave that much of the newest writes outside the repository.
const (
	minSegmentInterval = time.Second
	maxSegmentInterval = time.Hour
)

func (c *ContinuousBackup) validate(t *Target, p *field.Path) field.ErrorList {
	if c == nil {
		return nil
	}
	var errs field.ErrorList
	if c.SegmentInterval != "" {
		d, err := time.ParseDuration(c.SegmentInterval)
		if err != nil || d < minSegmentInterval || d > maxSegmentInterval {
			errs = append(errs, field.Invalid(p.Child("segmentInterval"), c.SegmentInterval,
				fmt.Sprintf("must be a duration from %s to %s, such as \"10s\"", minSegmentInterval, maxSegmentInterval)))
		}
	}
	for _, f := range []struct {
		name, value string
		min         time.Duration
	}{{"baseInterval", c.BaseInterval, time.Second}, {"window", c.Window, time.Second}} {
		if f.value == "" {
			continue
		}
		d, err := time.ParseDuration(f.value)
		if err != nil || (d != 0 || f.name == "window") && d < f.min {
			errs = append(errs, field.Invalid(p.Child(f.name), f.value,
				fmt.Sprintf("must be a duration of at least %s, such as \"6h\"", f.min)))
		}
	}
	if r := t.Redis; c.Enabled && r != nil && r.Mode == RedisModeCluster {
		errs = append(errs, field.Forbidden(p.Child("enabled"),
			"continuous backup follows one server or a Sentinel's master; target.redis.mode cluster is not supported yet"))
	}
	if c.Enabled && t.ReadFromReplica {
		errs = append(errs, field.Forbidden(p.Child("enabled"), "continuous backup follows the server the target names; readFromReplica does not apply"))
	}
	return errs
}

// ValidateUpdate validates b as a change of old. Every field of a BackupConfiguration may
// change; the controller updates the CronJob to match.
func (b *BackupConfiguration) ValidateUpdate(old *BackupConfiguration) field.ErrorList {
	return b.Validate()
}

const maxRetry = 10

func validateSchedule(s string, p *field.Path) field.ErrorList {
	if s == "" {
		return field.ErrorList{field.Required(p, `a cron expression such as "0 */6 * * *" or "@daily"`)}
	}
	if strings.Contains(s, "TZ=") {
		return field.ErrorList{field.Invalid(p, s, "a time zone in the schedule is not supported: set spec.timeZone (an IANA name such as \"Europe/Berlin\")")}
	}
	// The CronJob controller parses schedules with this very parser.
	sched, err := cron.ParseStandard(s)
	if err != nil {
		return field.ErrorList{field.Invalid(p, s, "not a valid cron expression: "+err.Error())}
	}
	if d, ok := sched.(cron.ConstantDelaySchedule); ok && d.Delay < minScheduleInterval {
		return field.ErrorList{field.Invalid(p, s, fmt.Sprintf("runs more often than every %s; a backup every few seconds would start "+
			"before the last one ends (for continuous backup set spec.continuous)", minScheduleInterval))}
	}
	// A date that never comes (February 30th) parses but never fires; the parser looks five
	// years ahead. A fixed instant keeps validation pure; any 5 years hold a February 29th.
	if sched.Next(scheduleProbe).IsZero() {
		return field.ErrorList{field.Invalid(p, s, "never fires: no date matches it (check the day of the month against the month)")}
	}
	return nil
}

// minScheduleInterval is the shortest interval of an "@every" schedule; five-field cron
// expressions cannot go below it anyway.
const minScheduleInterval = time.Minute

// scheduleProbe is the instant from which validation looks for a schedule's next run.
var scheduleProbe = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

func validateRepositoryRef(r *RepositoryRef, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if r.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), "the Repository that holds the snapshots"))
	} else {
		errs = append(errs, dnsSubdomain(r.Name, p.Child("name"))...)
	}
	if r.Namespace != "" {
		for _, msg := range validation.IsDNS1123Label(r.Namespace) {
			errs = append(errs, field.Invalid(p.Child("namespace"), r.Namespace, msg))
		}
	}
	return errs
}

func validateRetention(r *RetentionPolicy, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	rules := r.Rules()
	kept, names := 0, make([]string, len(rules))
	for i, rule := range rules {
		names[i] = rule.Field
		v := rule.Value()
		if v == nil {
			continue
		}
		if msg := rule.CheckValue(*v); msg != "" {
			errs = append(errs, field.Invalid(p.Child(rule.Field), *v, msg))
		} else if *v > 0 {
			kept++
		}
	}
	if kept == 0 && len(errs) == 0 {
		errs = append(errs, field.Required(p,
			"must keep something: set at least one of "+strings.Join(names, ", ")+" above 0 (a policy that keeps nothing would delete every snapshot)"))
	}
	return errs
}

func nonNegative(v *int32, p *field.Path) field.ErrorList {
	if v != nil && *v < 0 {
		return field.ErrorList{field.Invalid(p, *v, "must be greater than or equal to 0")}
	}
	return nil
}

func validateTimeOut(s string, p *field.Path) field.ErrorList {
	if s == "" {
		return nil
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return field.ErrorList{field.Invalid(p, s, `must be a duration such as "30m" or "2h"`)}
	case d < time.Second:
		return field.ErrorList{field.Invalid(p, s, "must be at least 1s")}
	}
	return nil
}

func validateRuntimeSettings(r *RuntimeSettings, p *field.Path) field.ErrorList {
	if r == nil {
		return nil
	}
	errs := metav1validation.ValidateLabels(r.NodeSelector, p.Child("nodeSelector"))
	if r.ServiceAccountName != "" {
		errs = append(errs, dnsSubdomain(r.ServiceAccountName, p.Child("serviceAccountName"))...)
	}
	return errs
}

func (t *Target) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case t.Ref == nil && t.Redis == nil:
		return field.ErrorList{field.Required(p, "must set exactly one of ref (an AppBinding) and redis (an inline endpoint)")}
	case t.Ref != nil && t.Redis != nil:
		return field.ErrorList{field.Forbidden(p, "must set exactly one of ref (an AppBinding) and redis (an inline endpoint), not both")}
	case t.Ref != nil:
		rp := p.Child("ref")
		if t.Ref.Name == "" {
			errs = append(errs, field.Required(rp.Child("name"), "the AppBinding of the Redis"))
		} else {
			errs = append(errs, dnsSubdomain(t.Ref.Name, rp.Child("name"))...)
		}
		if t.Ref.Kind != "" && t.Ref.Kind != AppBindingKind {
			errs = append(errs, field.NotSupported(rp.Child("kind"), t.Ref.Kind, []string{AppBindingKind}))
		}
		if t.Ref.APIVersion != "" && t.Ref.APIVersion != AppBindingAPIVersion {
			errs = append(errs, field.NotSupported(rp.Child("apiVersion"), t.Ref.APIVersion, []string{AppBindingAPIVersion}))
		}
		if t.Ref.AuthSecret != nil && t.Ref.MasterName == "" {
			errs = append(errs, field.Forbidden(rp.Child("authSecret"), "only with masterName (the data nodes' credentials behind a Sentinel's AppBinding)"))
		}
		errs = append(errs, t.Ref.AuthSecret.validate(rp.Child("authSecret"))...)
	default:
		errs = append(errs, t.Redis.validate(p.Child("redis"))...)
	}
	return errs
}

// validate checks a Secret reference with its keys; nil is valid (none given).
func (a *AuthSecret) validate(p *field.Path) field.ErrorList {
	if a == nil {
		return nil
	}
	var errs field.ErrorList
	if a.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), "the Secret with the Redis password"))
	} else {
		errs = append(errs, dnsSubdomain(a.Name, p.Child("name"))...)
	}
	errs = append(errs, secretKey(a.UsernameKey, p.Child("usernameKey"))...)
	return append(errs, secretKey(a.PasswordKey, p.Child("passwordKey"))...)
}

func (r *RedisTarget) validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case r.Address == "" && r.Service == nil:
		errs = append(errs, field.Required(p, "must set exactly one of address and service"))
	case r.Address != "" && r.Service != nil:
		errs = append(errs, field.Forbidden(p.Child("address"), "may not be set together with service"))
	case r.Address != "":
		errs = append(errs, validateAddress(r.Address, p.Child("address"))...)
	default:
		sp := p.Child("service")
		if r.Service.Name == "" {
			errs = append(errs, field.Required(sp.Child("name"), "the Service in front of Redis"))
		} else {
			for _, msg := range validation.IsDNS1035Label(r.Service.Name) {
				errs = append(errs, field.Invalid(sp.Child("name"), r.Service.Name, msg))
			}
		}
		if r.Service.Port != 0 {
			for _, msg := range validation.IsValidPortNum(int(r.Service.Port)) {
				errs = append(errs, field.Invalid(sp.Child("port"), r.Service.Port, msg))
			}
		}
	}
	switch r.Mode {
	case "", RedisModeStandalone, RedisModeCluster:
		if r.MasterName != "" {
			errs = append(errs, field.Forbidden(p.Child("masterName"), "may only be set in sentinel mode"))
		}
	case RedisModeSentinel:
		if r.MasterName == "" {
			errs = append(errs, field.Required(p.Child("masterName"), "the Sentinel master set name (sentinel monitor <name> ...)"))
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("mode"), r.Mode, RedisModes))
	}
	errs = append(errs, validateDatabases(r.Databases, p.Child("databases"))...)
	if r.Mode == RedisModeCluster {
		for i, db := range r.Databases {
			if err := CheckClusterDatabase(int(db), 1); err != nil {
				errs = append(errs, field.Invalid(p.Child("databases").Index(i), db, clusterOnlyDatabase0))
			}
		}
	}
	errs = append(errs, r.AuthSecret.validate(p.Child("authSecret"))...)
	if t := r.TLS; t != nil {
		tp := p.Child("tls")
		if t.CASecret != nil {
			if t.CASecret.Name == "" {
				errs = append(errs, field.Required(tp.Child("caSecret", "name"), "the Secret with the CA certificate"))
			} else {
				errs = append(errs, dnsSubdomain(t.CASecret.Name, tp.Child("caSecret", "name"))...)
			}
			errs = append(errs, secretKey(t.CASecret.Key, tp.Child("caSecret", "key"))...)
		}
		if t.ClientCertSecret != nil {
			if t.ClientCertSecret.Name == "" {
				errs = append(errs, field.Required(tp.Child("clientCertSecret", "name"), "the kubernetes.io/tls Secret with the client certificate"))
			} else {
				errs = append(errs, dnsSubdomain(t.ClientCertSecret.Name, tp.Child("clientCertSecret", "name"))...)
			}
		}
		if t.ServerName != "" {
			for _, msg := range validation.IsDNS1123Subdomain(strings.TrimPrefix(t.ServerName, "*.")) {
				errs = append(errs, field.Invalid(tp.Child("serverName"), t.ServerName, msg))
			}
		}
		if t.InsecureSkipVerify && t.CASecret != nil {
			errs = append(errs, field.Forbidden(tp.Child("insecureSkipVerify"), "may not be set together with caSecret: a CA is only useful when the certificate is verified"))
		}
	}
	return errs
}

func validateAddress(a string, p *field.Path) field.ErrorList {
	if strings.HasPrefix(a, "/") {
		return nil // a unix socket
	}
	if strings.Contains(a, "://") {
		return field.ErrorList{field.Invalid(p, a, "must be host:port or an absolute unix socket path, without a scheme; set tls for TLS and authSecret for credentials")}
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" {
		return field.ErrorList{field.Invalid(p, a, "must be host:port (such as redis.db.svc:6379) or an absolute unix socket path")}
	}
	var n int
	if _, err := fmt.Sscanf(port, "%d", &n); err != nil || fmt.Sprint(n) != port || len(validation.IsValidPortNum(n)) > 0 {
		return field.ErrorList{field.Invalid(p, a, "port must be a number between 1 and 65535")}
	}
	return nil
}

func validateDatabases(dbs []int32, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[int32]bool{}
	for i, db := range dbs {
		switch {
		case db < 0:
			errs = append(errs, field.Invalid(p.Index(i), db, "must be greater than or equal to 0"))
		case seen[db]:
			errs = append(errs, field.Duplicate(p.Index(i), db))
		}
		seen[db] = true
	}
	return errs
}

// Validate returns every problem of the BackupSession, each with its field path.
func (s *BackupSession) Validate() field.ErrorList {
	errs := validateName(&s.ObjectMeta, MaxBackupSessionName)
	ip := field.NewPath("spec", "invoker")
	inv := s.Spec.Invoker
	if inv.Name == "" {
		errs = append(errs, field.Required(ip.Child("name"), "the BackupConfiguration that this session runs"))
	} else {
		errs = append(errs, dnsSubdomain(inv.Name, ip.Child("name"))...)
	}
	if inv.Kind != "" && inv.Kind != KindBackupConfiguration {
		errs = append(errs, field.NotSupported(ip.Child("kind"), inv.Kind, []string{KindBackupConfiguration}))
	}
	if inv.APIGroup != "" && inv.APIGroup != GroupVersion.Group {
		errs = append(errs, field.NotSupported(ip.Child("apiGroup"), inv.APIGroup, []string{GroupVersion.Group}))
	}
	if s.Spec.RetryLeft < 0 {
		errs = append(errs, field.Invalid(field.NewPath("spec", "retryLeft"), s.Spec.RetryLeft, "must be greater than or equal to 0"))
	}
	return errs
}

// ValidateUpdate validates s as a change of old: a session cannot be moved to another
// BackupConfiguration.
func (s *BackupSession) ValidateUpdate(old *BackupSession) field.ErrorList {
	errs := s.Validate()
	if s.Spec.Invoker != old.Spec.Invoker {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "invoker"), "cannot change; trigger a new BackupSession instead"))
	}
	return errs
}

// SnapshotIDPattern is the form of snapshot ids: UTC time of the backup, then a random
// suffix, so that ids sort by time and two backups never share one.
var SnapshotIDPattern = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6,16}$`)

// Validate returns every problem of the RestoreSession, each with its field path.
func (r *RestoreSession) Validate() field.ErrorList {
	s := &r.Spec
	sp := field.NewPath("spec")
	errs := validateName(&r.ObjectMeta, MaxRestoreSessionName)
	errs = append(errs, validateRepositoryRef(&s.Repository, sp.Child("repository"))...)
	errs = append(errs, s.Target.validate(sp.Child("target"))...)
	if s.Target.ReadFromReplica {
		errs = append(errs, field.Forbidden(sp.Child("target", "readFromReplica"), "a restore writes to the masters; readFromReplica is for backups"))
	}
	if s.Target.ConsistentCut != nil {
		errs = append(errs, field.Forbidden(sp.Child("target", "consistentCut"), "consistentCut is for backups of a cluster"))
	}
	if s.Snapshot != "" && s.Snapshot != SnapshotLatest && !SnapshotIDPattern.MatchString(s.Snapshot) {
		errs = append(errs, field.Invalid(sp.Child("snapshot"), s.Snapshot,
			`must be "latest" or a snapshot id such as 20261125T233500Z-3f9a1c (see: kubectl stash snapshots list REPOSITORY)`))
	}
	errs = append(errs, validateTimeOut(s.TimeOut, sp.Child("timeOut"))...)
	switch s.ConflictPolicy {
	case "", ConflictFail, ConflictReplace:
	default:
		errs = append(errs, field.NotSupported(sp.Child("conflictPolicy"), s.ConflictPolicy, []ConflictPolicy{ConflictFail, ConflictReplace}))
	}
	errs = append(errs, validateDatabases(s.Databases, sp.Child("databases"))...)
	if s.KeyPattern != "" {
		if len(s.KeyPattern) > 1024 {
			errs = append(errs, field.TooLong(sp.Child("keyPattern"), "", 1024))
		}
		if s.FlushBeforeRestore {
			errs = append(errs, field.Forbidden(sp.Child("flushBeforeRestore"),
				"may not be set together with keyPattern: the flush would delete the keys that the pattern leaves out"))
		}
	}
	if s.PointInTime != nil {
		// The target's own databases select as much as spec.databases (runner/session
		// restores the union of both).
		var targetDBs int
		if s.Target.Redis != nil {
			targetDBs = len(s.Target.Redis.Databases)
		}
		if err := CheckPointInTimeSelection(len(s.Databases)+targetDBs, s.KeyPattern); err != nil {
			errs = append(errs, field.Forbidden(sp.Child("pointInTime"), err.Error()+
				": remove databases, keyPattern and target.redis.databases, or restore a snapshot instead"))
		}
	}
	errs = append(errs, validateRuntimeSettings(s.RuntimeSettings, sp.Child("runtimeSettings"))...)
	errs = append(errs, s.Hooks.validate(&s.Target, sp.Child("hooks"))...)
	return errs
}

// ValidateUpdate validates r as a change of old: a RestoreSession runs once, so its spec
// cannot change after creation.
func (r *RestoreSession) ValidateUpdate(old *RestoreSession) field.ErrorList {
	errs := r.Validate()
	if !apiequality.Semantic.DeepEqual(r.Spec, old.Spec) {
		errs = append(errs, field.Forbidden(field.NewPath("spec"), "a RestoreSession runs once and its spec cannot change; create a new RestoreSession instead"))
	}
	return errs
}

// validateName checks that the object's name (or generateName) fits where the controller
// will use it; max 0 means the API server's own limit.
func validateName(m *metav1.ObjectMeta, max int) field.ErrorList {
	p := field.NewPath("metadata", "name")
	name := m.Name
	if name == "" {
		if m.GenerateName == "" {
			return field.ErrorList{field.Required(p, "name or generateName is required")}
		}
		p = field.NewPath("metadata", "generateName")
		name = strings.TrimSuffix(m.GenerateName, "-")
		if max > 0 {
			max -= generateNameSuffix + 1
		}
	}
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Label(name) {
		errs = append(errs, field.Invalid(p, name, msg))
	}
	if max > 0 && len(name) > max {
		errs = append(errs, field.Invalid(p, name, fmt.Sprintf("must be no more than %d characters, so that the names of the CronJobs and Jobs made from it stay within Kubernetes' limits", max)))
	}
	return errs
}

func dnsSubdomain(name string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(name) {
		errs = append(errs, field.Invalid(p, name, msg))
	}
	return errs
}

func secretKey(key string, p *field.Path) field.ErrorList {
	if key == "" {
		return nil
	}
	var errs field.ErrorList
	for _, msg := range validation.IsConfigMapKey(key) {
		errs = append(errs, field.Invalid(p, key, msg))
	}
	return errs
}

// MaxConsistentCutPause is the longest pause of writes a consistent cut may be given.
const MaxConsistentCutPause = time.Minute

// validate checks a consistent cut of the backup of target t (nil: none).
func (c *ConsistentCut) validate(t *Target, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if c == nil {
		return nil
	}
	if mp := c.MaxPause; mp != nil && (mp.Duration <= 0 || mp.Duration > MaxConsistentCutPause) {
		errs = append(errs, field.Invalid(p.Child("maxPause"), mp.Duration.String(), "must be above 0 and at most 1m: writes on every master stay paused up to this long"))
	}
	if !c.Enabled {
		return errs
	}
	if r := t.Redis; r != nil && r.Mode != RedisModeCluster {
		errs = append(errs, field.Invalid(p.Child("enabled"), true, "needs target.redis.mode cluster: a standalone or Sentinel backup by replication is already one instant"))
	}
	if t.ReadFromReplica {
		errs = append(errs, field.Forbidden(p.Child("enabled"), "a consistent cut reads the paused masters themselves; drop readFromReplica"))
	}
	return errs
}
