package v1alpha1

import "strings"

// Default values, named so that docs, the webhook and the plugin agree.
const (
	DefaultTimeOut                  = "1h"
	DefaultBackupHistoryLimit       = int32(1)
	DefaultFailedBackupHistoryLimit = int32(3)
	DefaultRedisPort                = int32(6379)
	DefaultSentinelPort             = int32(26379)
	DefaultUsernameKey              = "username"
	DefaultPasswordKey              = "password"
	DefaultCAKey                    = "ca.crt"
)

// Default fills in the Repository's optional fields. It is idempotent.
func (r *Repository) Default() {
	b := &r.Spec.Backend
	switch {
	case b.GCS != nil:
		b.GCS.Prefix = cleanPrefix(b.GCS.Prefix)
	case b.S3 != nil:
		b.S3.Prefix = cleanPrefix(b.S3.Prefix)
	case b.Azure != nil:
		b.Azure.Prefix = cleanPrefix(b.Azure.Prefix)
	}
	if r.Spec.UsagePolicy == nil {
		r.Spec.UsagePolicy = &UsagePolicy{}
	}
	if r.Spec.UsagePolicy.AllowedNamespaces.From == "" {
		r.Spec.UsagePolicy.AllowedNamespaces.From = NamespacesFromSame
	}
}

// cleanPrefix drops the leading and trailing slashes that Stash examples often carry
// ("/demo/redis"): object keys have no leading slash.
func cleanPrefix(p string) string { return strings.Trim(p, "/") }

// Default fills in the BackupConfiguration's optional fields. It is idempotent.
func (b *BackupConfiguration) Default() {
	s := &b.Spec
	s.Target.Default()
	if s.BackupHistoryLimit == nil {
		v := DefaultBackupHistoryLimit
		s.BackupHistoryLimit = &v
	}
	if s.FailedBackupHistoryLimit == nil {
		v := DefaultFailedBackupHistoryLimit
		s.FailedBackupHistoryLimit = &v
	}
	if s.TimeOut == "" {
		s.TimeOut = DefaultTimeOut
	}
	defaultHooks(s.Hooks.Handlers())
	if h := s.Hooks; h != nil && h.PostBackup != nil && h.PostBackup.ExecutionPolicy == "" {
		h.PostBackup.ExecutionPolicy = HookAlways
	}
}

// Default fills in the BackupSession's optional fields. It is idempotent.
func (s *BackupSession) Default() {
	if s.Spec.Invoker.APIGroup == "" {
		s.Spec.Invoker.APIGroup = GroupVersion.Group
	}
	if s.Spec.Invoker.Kind == "" {
		s.Spec.Invoker.Kind = KindBackupConfiguration
	}
	// The labels let the controller find a configuration's sessions (history, overlap),
	// however the session was created.
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	if s.Spec.Invoker.Name != "" {
		s.Labels[LabelInvokerKind] = s.Spec.Invoker.Kind
		s.Labels[LabelInvokerName] = s.Spec.Invoker.Name
	}
}

// Default fills in the RestoreSession's optional fields. It is idempotent.
func (r *RestoreSession) Default() {
	s := &r.Spec
	s.Target.Default()
	if s.Snapshot == "" {
		s.Snapshot = SnapshotLatest
	}
	if s.TimeOut == "" {
		s.TimeOut = DefaultTimeOut
	}
	if s.ConflictPolicy == "" {
		s.ConflictPolicy = ConflictFail
	}
	defaultHooks(s.Hooks.Handlers())
	if h := s.Hooks; h != nil && h.PostRestore != nil && h.PostRestore.ExecutionPolicy == "" {
		h.PostRestore.ExecutionPolicy = HookAlways
	}
}

// defaultHooks gives every hook its timeout.
func defaultHooks(hs []*HookHandler) {
	for _, h := range hs {
		if h.Timeout == "" {
			h.Timeout = DefaultHookTimeout
		}
	}
}

// Default fills in the target's optional fields. It is idempotent.
func (t *Target) Default() {
	if t.Ref != nil {
		if t.Ref.APIVersion == "" {
			t.Ref.APIVersion = AppBindingAPIVersion
		}
		if t.Ref.Kind == "" {
			t.Ref.Kind = AppBindingKind
		}
	}
	r := t.Redis
	if r == nil {
		return
	}
	if r.Mode == "" {
		r.Mode = RedisModeStandalone
	}
	if r.Service != nil && r.Service.Port == 0 {
		r.Service.Port = DefaultRedisPort
		if r.Mode == RedisModeSentinel {
			r.Service.Port = DefaultSentinelPort
		}
	}
	if a := r.AuthSecret; a != nil {
		if a.UsernameKey == "" {
			a.UsernameKey = DefaultUsernameKey
		}
		if a.PasswordKey == "" {
			a.PasswordKey = DefaultPasswordKey
		}
	}
	if r.TLS != nil && r.TLS.CASecret != nil && r.TLS.CASecret.Key == "" {
		r.TLS.CASecret.Key = DefaultCAKey
	}
}
