// Package config embeds the manifests of kubectl-stash (CRDs, webhook configuration, RBAC,
// the controller Deployment) so that `kubectl stash install` carries them in its binary.
package config

import "embed"

// FS holds every manifest under config/.
//
//go:embed crd/bases/*.yaml crd/appcatalog/*.yaml webhook/*.yaml deploy/*.yaml
var FS embed.FS
