package v1alpha1

// Keys of a Repository's storage Secret, named as in Stash's storage Secrets so that an existing
// Secret keeps working. The runner reads the same names from its environment: the controller maps
// the Secret into the Job with envFrom, so a key here is also an environment variable there.
const (
	// SecretKeyResticPassword is the repository password (Stash's name for it).
	SecretKeyResticPassword = "RESTIC_PASSWORD"
	// SecretKeyEncryptionPassword is this project's name for the same password; either will do.
	SecretKeyEncryptionPassword = "ENCRYPTION_PASSWORD"

	SecretKeyGoogleProjectID          = "GOOGLE_PROJECT_ID"
	SecretKeyGoogleServiceAccountJSON = "GOOGLE_SERVICE_ACCOUNT_JSON_KEY"
	// SecretKeyStorageEmulatorHost points the GCS client at an emulator (fake-gcs-server).
	SecretKeyStorageEmulatorHost = "STORAGE_EMULATOR_HOST"

	SecretKeyAWSAccessKeyID     = "AWS_ACCESS_KEY_ID"
	SecretKeyAWSSecretAccessKey = "AWS_SECRET_ACCESS_KEY"

	SecretKeyAzureAccountName = "AZURE_ACCOUNT_NAME"
	SecretKeyAzureAccountKey  = "AZURE_ACCOUNT_KEY"

	// SecretKeyCACertData is a PEM bundle trusted, besides the system roots, for the storage
	// endpoint: a MinIO or an emulator with a private CA.
	SecretKeyCACertData = "CA_CERT_DATA"
)

// PasswordSecretKeys are the keys that may hold the repository password, in the order looked at.
var PasswordSecretKeys = []string{SecretKeyResticPassword, SecretKeyEncryptionPassword}

// StorageSecretKeys are all the keys of a storage Secret, in the order help texts list them:
// the ones `kubectl stash create storage-secret --from-env` copies from its environment and the
// runner takes from its own.
var StorageSecretKeys = []string{
	SecretKeyResticPassword, SecretKeyEncryptionPassword, SecretKeyGoogleProjectID, SecretKeyGoogleServiceAccountJSON,
	SecretKeyAWSAccessKeyID, SecretKeyAWSSecretAccessKey, SecretKeyAzureAccountName, SecretKeyAzureAccountKey,
	SecretKeyCACertData, SecretKeyStorageEmulatorHost,
}
