package v1alpha1

// Names of the objects the controller derives from ours. Kubernetes limits CronJob names to
// 52 characters (the CronJob controller appends an 11-character suffix to its Jobs) and Job
// names to 63 (they become label values on the Pods), so the limits on our names follow
// from these prefixes and are checked at admission, not discovered at the first backup.
const (
	CronJobPrefix    = "stash-trigger-"
	BackupJobPrefix  = "stash-backup-"
	RestoreJobPrefix = "stash-restore-"
	FollowerPrefix   = "stash-follow-"

	maxCronJobName = 52
	maxJobName     = 63
	// generateNameSuffix is the length of the random suffix the API server appends to generateName.
	generateNameSuffix = 5

	// MaxBackupConfigurationName keeps "stash-trigger-<name>" a valid CronJob name.
	MaxBackupConfigurationName = maxCronJobName - len(CronJobPrefix)
	// MaxBackupSessionName keeps "stash-backup-<name>" a valid Job name.
	MaxBackupSessionName = maxJobName - len(BackupJobPrefix)
	// MaxRestoreSessionName keeps "stash-restore-<name>" a valid Job name.
	MaxRestoreSessionName = maxJobName - len(RestoreJobPrefix)
)

// CronJobName is the name of the CronJob that triggers a BackupConfiguration.
func CronJobName(backupConfiguration string) string { return CronJobPrefix + backupConfiguration }

// FollowerName is the name of the Deployment that runs a BackupConfiguration's
// continuous-backup follower (shorter than its CronJob's name, so always valid).
func FollowerName(backupConfiguration string) string { return FollowerPrefix + backupConfiguration }

// BackupJobName is the name of the Job that runs a BackupSession.
func BackupJobName(session string) string { return BackupJobPrefix + session }

// RestoreJobName is the name of the Job that runs a RestoreSession.
func RestoreJobName(session string) string { return RestoreJobPrefix + session }

// Labels and names shared by the controller, the runner and the plugin.
const (
	// LabelInvokerKind and LabelInvokerName mark a BackupSession with its BackupConfiguration.
	LabelInvokerKind = "stash.dev/invoker-kind"
	LabelInvokerName = "stash.dev/invoker-name"
	// LabelSession marks the Job of a BackupSession or RestoreSession.
	LabelSession = "stash.dev/session"
	// LabelComponent marks every object the controller creates.
	LabelComponent = "app.kubernetes.io/component"
	// RunnerServiceAccount is the service account (and Role) of the runner in each namespace.
	RunnerServiceAccount = "stash-runner"
)
