package webhook

import (
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"stash.dev/redis/api/v1alpha1"
)

// NewScheme returns a scheme with the built-in kinds and ours: what the manager reads and
// writes. Registration fails only on a programming mistake, which every test would catch.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}
