package plugin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"stash.dev/redis/api/v1alpha1"
)

// NewCmdCreate returns `kubectl stash create`.
func NewCmdCreate(getter genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a storage Secret, Repository, BackupConfiguration or RestoreSession",
		Long: `Create builds an object from flags, applies the API's defaults and validation (the same
functions as the admission webhook) and server-side applies it with field manager kubectl-stash.
-o yaml|json and --dry-run=client print the object instead of sending it.`,
	}
	cmd.AddCommand(newCmdCreateSecret(getter, streams))
	cmd.AddCommand(NewCmdCreateRepository(getter, streams))
	cmd.AddCommand(NewCmdCreateBackupConfig(getter, streams))
	cmd.AddCommand(NewCmdCreateRestoreSession(getter, streams))
	return cmd
}

func newCmdCreateSecret(getter genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{Use: "secret", Short: "Create a Secret"}
	cmd.AddCommand(NewCmdCreateStorageSecret(getter, streams))
	return cmd
}

// secretKeys are the storage Secret's keys (v1alpha1.StorageSecretKeys, which --from-env copies)
// that are never printed.
var secretKeys = map[string]bool{v1alpha1.SecretKeyResticPassword: true, v1alpha1.SecretKeyEncryptionPassword: true, v1alpha1.SecretKeyGoogleServiceAccountJSON: true,
	v1alpha1.SecretKeyAWSSecretAccessKey: true, v1alpha1.SecretKeyAzureAccountKey: true}

// redacted replaces secret values in printed Secrets.
const redacted = "<redacted>"

// CreateStorageSecretOptions creates the Secret a Repository names: the repository password
// and the backend's credentials. Secret values come from files, standard input or the
// environment, never from a flag value, and are never printed.
type CreateStorageSecretOptions struct {
	writeOptions
	name string

	fromEnv          bool
	passwordFile     string
	passwordStdin    bool
	googleProjectID  string
	googleSAKeyFile  string
	awsAccessKeyID   string
	azureAccountName string
	caCertFile       string
	storageEmulator  string
	getenv           func(string) string
	readFile         func(string) ([]byte, error)
	data             map[string]string // set in Complete
}

// NewCmdCreateStorageSecret returns `kubectl stash create secret storage`.
func NewCmdCreateStorageSecret(getter genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams) *cobra.Command {
	o := &CreateStorageSecretOptions{writeOptions: newWriteOptions(getter, streams, "applied"), getenv: os.Getenv, readFile: os.ReadFile}
	cmd := &cobra.Command{
		Use:   "storage NAME",
		Short: "Create the storage Secret of a Repository (password and backend credentials)",
		Long: `Create the storage Secret of a Repository. The repository password (RESTIC_PASSWORD) comes
from --password-file, --password-stdin or, with --from-env, the environment, which also supplies
the backend's credentials (GOOGLE_*, AWS_*, AZURE_*, CA_CERT_DATA). Secret values are never
taken from a flag's value and never printed: -o yaml marks them <redacted> in data, which is not
base64, so that the printed Secret cannot be applied by mistake.`,
		Example: `  RESTIC_PASSWORD=... AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... kubectl stash create secret storage s3-secret --from-env -n db
  kubectl stash create secret storage gcs-secret --password-file pw.txt --google-project-id my-proj --google-service-account-key-file sa.json -n db`,
		Args: cobra.ExactArgs(1),
		RunE: runE(o),
	}
	o.addFlags(cmd)
	f := cmd.Flags()
	f.BoolVar(&o.fromEnv, "from-env", false, "copy the storage keys that are set in the environment ("+strings.Join(v1alpha1.StorageSecretKeys, ", ")+")")
	f.StringVar(&o.passwordFile, "password-file", "", "file whose first line is the repository password")
	f.BoolVar(&o.passwordStdin, "password-stdin", false, "read the repository password from the first line of standard input")
	f.StringVar(&o.googleProjectID, "google-project-id", "", "GCS: the Google Cloud project")
	f.StringVar(&o.googleSAKeyFile, "google-service-account-key-file", "", "GCS: service account JSON key file (default: workload identity)")
	f.StringVar(&o.awsAccessKeyID, "aws-access-key-id", "", "S3: access key id (the secret key comes from $AWS_SECRET_ACCESS_KEY with --from-env)")
	f.StringVar(&o.azureAccountName, "azure-account-name", "", "Azure: storage account name (the key comes from $AZURE_ACCOUNT_KEY with --from-env)")
	f.StringVar(&o.caCertFile, "ca-cert-file", "", "CA certificate of a self-hosted object store")
	f.StringVar(&o.storageEmulator, "storage-emulator-host", "", "GCS emulator host:port, for tests")
	return cmd
}

// Complete reads the values from the environment, files and standard input.
func (o *CreateStorageSecretOptions) Complete(_ *cobra.Command, args []string) error {
	o.name = args[0]
	o.data = map[string]string{}
	if o.fromEnv {
		for _, k := range v1alpha1.StorageSecretKeys {
			if v := o.getenv(k); v != "" {
				o.data[k] = v
			}
		}
	}
	readFirstLine := func(r io.Reader) (string, error) {
		line, err := bufio.NewReader(r).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	switch {
	case o.passwordFile != "":
		b, err := o.readFile(o.passwordFile)
		if err != nil {
			return fmt.Errorf("read password file: %w", err)
		}
		pw, _ := readFirstLine(strings.NewReader(string(b)))
		o.data[v1alpha1.SecretKeyResticPassword] = pw
	case o.passwordStdin:
		if f, ok := o.In.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				return errors.New("--password-stdin reads a pipe, and a terminal would echo the password: use --password-file FILE, or --from-env with RESTIC_PASSWORD set")
			}
		}
		pw, err := readFirstLine(o.In)
		if err != nil {
			return fmt.Errorf("read password from standard input: %w", err)
		}
		o.data[v1alpha1.SecretKeyResticPassword] = pw
	}
	for k, file := range map[string]string{v1alpha1.SecretKeyGoogleServiceAccountJSON: o.googleSAKeyFile, v1alpha1.SecretKeyCACertData: o.caCertFile} {
		if file == "" {
			continue
		}
		b, err := o.readFile(file)
		if err != nil {
			return fmt.Errorf("read %s: %w", file, err)
		}
		o.data[k] = string(b)
	}
	for k, v := range map[string]string{v1alpha1.SecretKeyGoogleProjectID: o.googleProjectID, v1alpha1.SecretKeyAWSAccessKeyID: o.awsAccessKeyID,
		v1alpha1.SecretKeyAzureAccountName: o.azureAccountName, v1alpha1.SecretKeyStorageEmulatorHost: o.storageEmulator} {
		if v != "" {
			o.data[k] = v
		}
	}
	return o.complete()
}

// Validate checks that there is a password.
func (o *CreateStorageSecretOptions) Validate() error {
	if o.passwordFile != "" && o.passwordStdin {
		return errors.New("give the password with one of --password-file and --password-stdin, not both")
	}
	if o.data[v1alpha1.SecretKeyResticPassword] == "" && o.data[v1alpha1.SecretKeyEncryptionPassword] == "" {
		return errors.New("no repository password: use --password-file FILE, --password-stdin, or --from-env with RESTIC_PASSWORD set")
	}
	return nil
}

// Run prints or applies the Secret.
func (o *CreateStorageSecretOptions) Run(ctx context.Context) error {
	return o.emit(ctx, buildStorageSecret(o.name, o.namespace(), o.data), "")
}

// buildStorageSecret returns the storage Secret with the given keys.
func buildStorageSecret(name, namespace string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{},
	}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

// printable returns what may be shown of obj: a Secret's non-secret keys in stringData, its
// secret keys in data as <redacted>. That is not base64, so the printed Secret cannot be
// applied by mistake: kubectl apply refuses it (illegal base64 data) instead of creating a
// Secret whose password is the word "<redacted>". Other objects are shown as they are.
func printable(obj runtime.Object) runtime.Object {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return obj
	}
	meta := map[string]any{"name": s.Name}
	if s.Namespace != "" {
		meta["namespace"] = s.Namespace
	}
	u := map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": string(s.Type)}
	plain, hidden := map[string]any{}, map[string]any{}
	for k, v := range s.Data {
		if secretKeys[k] {
			hidden[k] = redacted
		} else {
			plain[k] = string(v)
		}
	}
	if len(plain) > 0 {
		u["stringData"] = plain
	}
	if len(hidden) > 0 {
		u["data"] = hidden
	}
	return &unstructured.Unstructured{Object: u}
}

// redactedNote heads a printed Secret whose values are hidden.
const redactedNote = "# Secret values are not printed: data marked " + redacted + " is not base64, so kubectl apply refuses this\n" +
	"# Secret as it is. Create it with the same command without -o, or put the values in yourself.\n"

// CreateRepositoryOptions creates a Repository.
type CreateRepositoryOptions struct {
	writeOptions
	spec repositoryFlags
}

// repositoryFlags are the flags of `create repository`, kept apart so build is pure.
type repositoryFlags struct {
	name, namespace   string
	provider          string
	bucket, prefix    string
	endpoint, region  string
	insecureTLS       bool
	secret            string
	mountPath         string
	subPath           string
	pvc, hostPath     string
	allowedNamespaces string
	wipeOut           bool
}

// NewCmdCreateRepository returns `kubectl stash create repository`.
func NewCmdCreateRepository(getter genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams) *cobra.Command {
	o := &CreateRepositoryOptions{writeOptions: newWriteOptions(getter, streams, "applied")}
	cmd := &cobra.Command{
		Use:     "repository NAME --provider gcs|s3|azure|local --secret SECRET",
		Aliases: []string{"repo"},
		Short:   "Create a Repository: where snapshots are stored",
		Example: `  kubectl stash create repository gcs-prod --provider gcs --bucket backups --prefix redis/prod --secret gcs-secret -n db
  kubectl stash create repository minio --provider s3 --endpoint https://minio:9000 --bucket backups --secret s3-secret -n db
  kubectl stash create repository nfs --provider local --pvc backups --mount-path /repo --secret repo-secret -n db -o yaml`,
		Args: cobra.ExactArgs(1),
		RunE: runE(o),
	}
	o.addFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&o.spec.provider, "provider", "", "storage backend: gcs, s3, azure or local")
	f.StringVar(&o.spec.bucket, "bucket", "", "bucket (gcs, s3) or container (azure)")
	f.StringVar(&o.spec.prefix, "prefix", "", "key prefix inside the bucket")
	f.StringVar(&o.spec.endpoint, "endpoint", "", "s3: endpoint URL of an S3-compatible store")
	f.StringVar(&o.spec.region, "region", "", "s3: region")
	f.BoolVar(&o.spec.insecureTLS, "insecure-tls", false, "s3: skip TLS verification")
	f.StringVar(&o.spec.secret, "secret", "", "storage Secret with the repository password and credentials (see: kubectl stash create secret storage)")
	f.StringVar(&o.spec.mountPath, "mount-path", "", "local: where the repository volume is mounted in the Jobs")
	f.StringVar(&o.spec.subPath, "sub-path", "", "local: directory inside the volume")
	f.StringVar(&o.spec.pvc, "pvc", "", "local: PersistentVolumeClaim that holds the repository")
	f.StringVar(&o.spec.hostPath, "host-path", "", "local: host directory that holds the repository")
	f.StringVar(&o.spec.allowedNamespaces, "allowed-namespaces", "", "namespaces that may use the repository: Same (default) or All")
	f.BoolVar(&o.spec.wipeOut, "wipe-out", false, "delete the stored snapshots when the Repository is deleted")
	_ = cmd.RegisterFlagCompletionFunc("provider", cobra.FixedCompletions([]string{"gcs", "s3", "azure", "local"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("allowed-namespaces", cobra.FixedCompletions([]string{"Same", "All"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// Complete reads the name and namespace.
func (o *CreateRepositoryOptions) Complete(_ *cobra.Command, args []string) error {
	return o.completeNamed(args, &o.spec.name, &o.spec.namespace)
}

// Validate checks the flags that the API cannot (it validates the rest).
func (o *CreateRepositoryOptions) Validate() error {
	if o.spec.secret == "" {
		return errors.New("--secret is required: every repository is encrypted with the password in its storage Secret (see: kubectl stash create secret storage --help)")
	}
	return nil
}

// Run prints or applies the Repository.
func (o *CreateRepositoryOptions) Run(ctx context.Context) error {
	r, err := buildRepository(o.spec)
	if err != nil {
		return err
	}
	return o.emit(ctx, r, "")
}

// buildRepository returns the Repository the flags describe.
func buildRepository(f repositoryFlags) (*v1alpha1.Repository, error) {
	r := &v1alpha1.Repository{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: v1alpha1.KindRepository},
		ObjectMeta: metav1.ObjectMeta{Name: f.name, Namespace: f.namespace},
	}
	b := &r.Spec.Backend
	b.StorageSecretName = f.secret
	switch f.provider {
	case "gcs":
		b.GCS = &v1alpha1.GCSSpec{Bucket: f.bucket, Prefix: f.prefix}
	case "s3":
		b.S3 = &v1alpha1.S3Spec{Endpoint: f.endpoint, Bucket: f.bucket, Prefix: f.prefix, Region: f.region, InsecureTLS: f.insecureTLS}
	case "azure":
		b.Azure = &v1alpha1.AzureSpec{Container: f.bucket, Prefix: f.prefix}
	case "local":
		l := &v1alpha1.LocalSpec{MountPath: f.mountPath, SubPath: f.subPath}
		switch {
		case f.pvc != "" && f.hostPath != "":
			return nil, errors.New("give the local volume with one of --pvc and --host-path, not both")
		case f.pvc != "":
			l.PersistentVolumeClaim = &corev1.PersistentVolumeClaimVolumeSource{ClaimName: f.pvc}
		case f.hostPath != "":
			l.HostPath = &corev1.HostPathVolumeSource{Path: f.hostPath}
		default:
			return nil, errors.New("a local repository needs a volume: --pvc CLAIM or --host-path DIR")
		}
		b.Local = l
	case "":
		return nil, errors.New("--provider is required: gcs, s3, azure or local")
	default:
		return nil, fmt.Errorf("unknown --provider %q: use gcs, s3, azure or local", f.provider)
	}
	if f.provider != "local" && (f.pvc != "" || f.hostPath != "" || f.mountPath != "") {
		return nil, fmt.Errorf("--pvc, --host-path and --mount-path are for --provider local, not %s", f.provider)
	}
	if f.provider != "s3" && (f.endpoint != "" || f.region != "") {
		return nil, fmt.Errorf("--endpoint and --region are for --provider s3, not %s", f.provider)
	}
	r.Spec.WipeOut = f.wipeOut
	if f.allowedNamespaces != "" {
		r.Spec.UsagePolicy = &v1alpha1.UsagePolicy{AllowedNamespaces: v1alpha1.AllowedNamespaces{From: v1alpha1.FromNamespaces(f.allowedNamespaces)}}
	}
	return r, nil
}

// targetFlags select the Redis of a backup or restore.
type targetFlags struct {
	appBinding string
	service    string // NAME or NAME:PORT
	address    string // HOST:PORT
	mode       string
	masterName string
	authSecret string
	databases  []int32
}

func (t *targetFlags) addFlags(cmd *cobra.Command, databasesHelp string) {
	f := cmd.Flags()
	f.StringVar(&t.appBinding, "target-appbinding", "", "the Redis is described by this AppBinding (as KubeDB creates them)")
	f.StringVar(&t.service, "redis-service", "", "the Redis behind this Service: NAME or NAME:PORT")
	f.StringVar(&t.address, "redis-address", "", "the Redis at HOST:PORT")
	f.StringVar(&t.mode, "mode", "", "Redis mode with --redis-service/--redis-address: standalone (default), cluster or sentinel")
	f.StringVar(&t.masterName, "master-name", "", "sentinel: the monitored master's name (also with --target-appbinding of a Redis Sentinel)")
	f.StringVar(&t.authSecret, "auth-secret", "", "Secret with the Redis username and password")
	if databasesHelp != "" {
		f.Int32SliceVar(&t.databases, "databases", nil, databasesHelp)
	}
	_ = cmd.RegisterFlagCompletionFunc("mode", cobra.FixedCompletions(modeNames(), cobra.ShellCompDirectiveNoFileComp))
}

// modeNames are the API's Redis modes, for completion.
func modeNames() []string {
	names := make([]string, len(v1alpha1.RedisModes))
	for i, m := range v1alpha1.RedisModes {
		names[i] = string(m)
	}
	return names
}

// build returns the Target; the API validates the values.
func (t targetFlags) build() (v1alpha1.Target, error) {
	n := 0
	for _, s := range []string{t.appBinding, t.service, t.address} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return v1alpha1.Target{}, errors.New("name the Redis with exactly one of --target-appbinding, --redis-service and --redis-address")
	}
	if t.appBinding != "" {
		if t.mode != "" || len(t.databases) > 0 || (t.authSecret != "" && t.masterName == "") {
			return v1alpha1.Target{}, errors.New("--mode, --auth-secret and --databases describe an inline Redis: the AppBinding already says these " +
				"(with an AppBinding of a Redis Sentinel, --master-name names the master set and --auth-secret the data nodes' Secret)")
		}
		ref := &v1alpha1.TargetRef{Name: t.appBinding, MasterName: t.masterName}
		if t.authSecret != "" {
			ref.AuthSecret = &v1alpha1.AuthSecret{Name: t.authSecret}
		}
		return v1alpha1.Target{Ref: ref}, nil
	}
	r := &v1alpha1.RedisTarget{Address: t.address, Mode: v1alpha1.RedisMode(t.mode), MasterName: t.masterName, Databases: t.databases}
	if t.service != "" {
		name, port, hasPort := strings.Cut(t.service, ":")
		r.Service = &v1alpha1.ServiceTarget{Name: name}
		if hasPort {
			p, err := strconv.ParseInt(port, 10, 32)
			if err != nil {
				return v1alpha1.Target{}, fmt.Errorf("--redis-service %q: the port must be a number", t.service)
			}
			r.Service.Port = int32(p)
		}
	}
	if t.authSecret != "" {
		r.AuthSecret = &v1alpha1.AuthSecret{Name: t.authSecret}
	}
	return v1alpha1.Target{Redis: r}, nil
}

// CreateBackupConfigOptions creates a BackupConfiguration.
type CreateBackupConfigOptions struct {
	writeOptions
	spec backupConfigFlags
}

// backupConfigFlags are the flags of `create backupconfig`; keep values below 0 are unset.
type backupConfigFlags struct {
	name, namespace string
	target          targetFlags
	repo, repoNS    string
	schedule        string
	timeZone        string
	keep            []int32 // one per rule of v1alpha1.RetentionPolicy.Rules, in its order
	prune           bool
	paused          bool
	timeout         string
	historyLimit    int32
	// continuous enables the follower; segmentInterval is its segment interval ("" default).
	continuous      bool
	segmentInterval string
}

// NewCmdCreateBackupConfig returns `kubectl stash create backupconfig`.
func NewCmdCreateBackupConfig(getter genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams) *cobra.Command {
	o := &CreateBackupConfigOptions{writeOptions: newWriteOptions(getter, streams, "applied")}
	cmd := &cobra.Command{
		Use:     "backupconfig NAME --repo REPO --schedule CRON (--target-appbinding|--redis-service|--redis-address) ...",
		Aliases: []string{"backupconfiguration", "bc"},
		Short:   "Create a BackupConfiguration: scheduled backups of a Redis into a Repository",
		Example: `  kubectl stash create backupconfig nightly --target-appbinding sample-redis --repo gcs-prod --schedule "0 2 * * *" --keep-last 7 -n db
  kubectl stash create backupconfig cache --redis-service redis:6379 --auth-secret redis-auth --repo gcs-prod --schedule "@hourly" --keep-hourly 24 -n db -o yaml`,
		Args: cobra.ExactArgs(1),
		RunE: runE(o),
	}
	o.addFlags(cmd)
	f := cmd.Flags()
	o.spec.target.addFlags(cmd, "databases to back up (default: all)")
	f.StringVar(&o.spec.repo, "repo", "", "Repository to back up into")
	f.StringVar(&o.spec.repoNS, "repo-namespace", "", "namespace of the Repository (default: the BackupConfiguration's)")
	f.StringVar(&o.spec.schedule, "schedule", "", `cron schedule, e.g. "0 2 * * *" or "@daily"`)
	f.StringVar(&o.spec.timeZone, "time-zone", "", `IANA time zone the schedule runs in, e.g. "Europe/Berlin" (default: the cluster's, usually UTC)`)
	rules := new(v1alpha1.RetentionPolicy).Rules()
	o.spec.keep = make([]int32, len(rules))
	for i, r := range rules {
		f.Int32Var(&o.spec.keep[i], r.Flag, -1, "retention: "+r.Help)
	}
	f.BoolVar(&o.spec.prune, "prune", true, "retention: delete the snapshots that the keep-* rules do not keep")
	f.BoolVar(&o.spec.paused, "paused", false, "create it paused (see: kubectl stash backup resume)")
	f.StringVar(&o.spec.timeout, "timeout", "", "fail a backup that runs longer, e.g. 30m (default 1h)")
	f.Int32Var(&o.spec.historyLimit, "history-limit", -1, "BackupSessions to keep (default 1)")
	f.BoolVar(&o.spec.continuous, "continuous", false, "also follow the replication stream into the repository's journal (point-in-time restore; the target must allow PSYNC)")
	f.StringVar(&o.spec.segmentInterval, "segment-interval", "", "with --continuous: close a journal segment this long after its first command (default 10s)")
	return cmd
}

// Complete reads the name and namespace.
func (o *CreateBackupConfigOptions) Complete(_ *cobra.Command, args []string) error {
	return o.completeNamed(args, &o.spec.name, &o.spec.namespace)
}

// Validate checks the flags; the API validates the values.
func (o *CreateBackupConfigOptions) Validate() error {
	if o.spec.repo == "" {
		return errors.New("--repo is required (see: kubectl stash create repository --help)")
	}
	return nil
}

// Run prints or applies the BackupConfiguration.
func (o *CreateBackupConfigOptions) Run(ctx context.Context) error {
	bc, err := buildBackupConfig(o.spec)
	if err != nil {
		return err
	}
	return o.emit(ctx, bc, "")
}

// buildBackupConfig returns the BackupConfiguration the flags describe.
func buildBackupConfig(f backupConfigFlags) (*v1alpha1.BackupConfiguration, error) {
	target, err := f.target.build()
	if err != nil {
		return nil, err
	}
	bc := &v1alpha1.BackupConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: v1alpha1.KindBackupConfiguration},
		ObjectMeta: metav1.ObjectMeta{Name: f.name, Namespace: f.namespace},
		Spec: v1alpha1.BackupConfigurationSpec{
			Schedule:   f.schedule,
			TimeZone:   f.timeZone,
			Paused:     f.paused,
			Repository: v1alpha1.RepositoryRef{Name: f.repo, Namespace: f.repoNS},
			Target:     target,
			TimeOut:    f.timeout,
		},
	}
	var rp v1alpha1.RetentionPolicy
	var parts []string
	for i, r := range rp.Rules() {
		if i < len(f.keep) && f.keep[i] >= 0 {
			r.Set(f.keep[i])
			parts = append(parts, fmt.Sprintf("%s-%d", r.Flag, f.keep[i]))
		}
	}
	if len(parts) > 0 {
		rp.Name = strings.Join(parts, "-")
		rp.Prune = f.prune
		bc.Spec.RetentionPolicy = &rp
	}
	if f.historyLimit >= 0 {
		v := f.historyLimit
		bc.Spec.BackupHistoryLimit = &v
	}
	if f.segmentInterval != "" && !f.continuous {
		return nil, errors.New("--segment-interval applies with --continuous")
	}
	if f.continuous {
		bc.Spec.Continuous = &v1alpha1.ContinuousBackup{Enabled: true, SegmentInterval: f.segmentInterval}
	}
	return bc, nil
}

// CreateRestoreSessionOptions creates a RestoreSession.
type CreateRestoreSessionOptions struct {
	writeOptions
	spec restoreFlags
}

// restoreFlags are the flags of `create restoresession` and `restore`.
type restoreFlags struct {
	name, generateName string
	namespace          string
	target             targetFlags
	repo, repoNS       string
	snapshot           string
	timeout            string
	flush              bool
	conflictPolicy     string
	databases          []int32
	keyPattern         string
	// toTime is --to-time: an RFC 3339 instant to restore to through the journal.
	toTime     string
	allowLossy bool
}

func (r *restoreFlags) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&r.snapshot, "snapshot", v1alpha1.SnapshotLatest, `snapshot id to restore, or "latest" (see: kubectl stash snapshots list REPO)`)
	f.StringVar(&r.timeout, "timeout", "", "fail a restore that runs longer, e.g. 30m (default 1h)")
	f.BoolVar(&r.flush, "flush", false, "empty the target databases before restoring")
	f.StringVar(&r.conflictPolicy, "conflict-policy", "", "when a key exists: Fail (default) or Replace")
	f.Int32SliceVar(&r.databases, "databases", nil, "restore only these databases")
	f.StringVar(&r.keyPattern, "key-pattern", "", "restore only keys matching this glob pattern")
	f.BoolVar(&r.allowLossy, "allow-lossy", false, "restore into a server that cannot hold some values of the snapshot (hash field TTLs, vector sets into Valkey or an older Redis), leaving those keys out")
	f.StringVar(&r.toTime, "to-time", "", "restore the source as it was at this instant (RFC 3339, e.g. 2026-12-02T10:15:00Z) through the continuous backup's journal (see: kubectl stash backup describe)")
	_ = cmd.RegisterFlagCompletionFunc("conflict-policy", cobra.FixedCompletions([]string{"Fail", "Replace"}, cobra.ShellCompDirectiveNoFileComp))
}

// NewCmdCreateRestoreSession returns `kubectl stash create restoresession`.
func NewCmdCreateRestoreSession(getter genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams) *cobra.Command {
	o := &CreateRestoreSessionOptions{writeOptions: newWriteOptions(getter, streams, "applied")}
	cmd := &cobra.Command{
		Use:     "restoresession NAME --repo REPO [--snapshot latest|ID] (--target-appbinding|--redis-service|--redis-address)",
		Aliases: []string{"rs"},
		Short:   "Create a RestoreSession: restore a snapshot into a Redis",
		Example: `  kubectl stash create restoresession restore-1 --repo gcs-prod --snapshot latest --target-appbinding sample-redis -n db`,
		Args:    cobra.ExactArgs(1),
		RunE:    runE(o),
	}
	o.addFlags(cmd)
	o.spec.target.addFlags(cmd, "")
	o.spec.addFlags(cmd)
	cmd.Flags().StringVar(&o.spec.repo, "repo", "", "Repository to restore from")
	cmd.Flags().StringVar(&o.spec.repoNS, "repo-namespace", "", "namespace of the Repository (default: the RestoreSession's)")
	return cmd
}

// Complete reads the name and namespace.
func (o *CreateRestoreSessionOptions) Complete(_ *cobra.Command, args []string) error {
	return o.completeNamed(args, &o.spec.name, &o.spec.namespace)
}

// Validate checks the flags; the API validates the values.
func (o *CreateRestoreSessionOptions) Validate() error {
	if o.spec.repo == "" {
		return errors.New("--repo is required (see: kubectl get repositories.stash.dev)")
	}
	return nil
}

// Run prints or applies the RestoreSession.
func (o *CreateRestoreSessionOptions) Run(ctx context.Context) error {
	rs, err := buildRestoreSession(o.spec)
	if err != nil {
		return err
	}
	return o.emit(ctx, rs, "")
}

// buildRestoreSession returns the RestoreSession the flags describe.
func buildRestoreSession(f restoreFlags) (*v1alpha1.RestoreSession, error) {
	target, err := f.target.build()
	if err != nil {
		return nil, err
	}
	var pit *metav1.Time
	if f.toTime != "" {
		t, err := time.Parse(time.RFC3339, f.toTime)
		if err != nil {
			return nil, fmt.Errorf("--to-time %q: want an RFC 3339 time such as 2026-12-02T10:15:00Z", f.toTime)
		}
		pit = &metav1.Time{Time: t}
		if err := v1alpha1.CheckPointInTimeSelection(len(f.databases)+len(f.target.databases), f.keyPattern); err != nil {
			return nil, fmt.Errorf("%w (%s)", err, pointInTimeHint)
		}
		if f.snapshot == v1alpha1.SnapshotLatest {
			f.snapshot = "" // the restore picks the newest base before the instant
		}
	}
	return &v1alpha1.RestoreSession{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: v1alpha1.KindRestoreSession},
		ObjectMeta: metav1.ObjectMeta{Name: f.name, GenerateName: f.generateName, Namespace: f.namespace},
		Spec: v1alpha1.RestoreSessionSpec{
			Repository:         v1alpha1.RepositoryRef{Name: f.repo, Namespace: f.repoNS},
			Target:             target,
			Snapshot:           f.snapshot,
			TimeOut:            f.timeout,
			FlushBeforeRestore: f.flush,
			ConflictPolicy:     v1alpha1.ConflictPolicy(f.conflictPolicy),
			Databases:          f.databases,
			KeyPattern:         f.keyPattern,
			AllowLossy:         f.allowLossy,
			PointInTime:        pit,
		},
	}, nil
}
