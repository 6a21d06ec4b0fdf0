package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// AllowsNamespace applies the Repository's usage policy to namespace ns, as Stash does: Same
// (the default) allows only the Repository's own namespace, All every namespace, Selector the
// namespaces whose labels match (an invalid or missing selector allows none). nsLabels returns
// the labels of ns; it is called only for a Selector. The admission webhook refuses what this
// refuses, and the controller grants runners access to another namespace's Repository only
// when it allows, so both read the one rule here.
func (r *Repository) AllowsNamespace(ns string, nsLabels func() (map[string]string, error)) (bool, error) {
	from := NamespacesFromSame
	var sel *metav1.LabelSelector
	if p := r.Spec.UsagePolicy; p != nil && p.AllowedNamespaces.From != "" {
		from, sel = p.AllowedNamespaces.From, p.AllowedNamespaces.Selector
	}
	switch from {
	case NamespacesFromAll:
		return true, nil
	case NamespacesFromSelector:
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil || sel == nil {
			return false, nil
		}
		l, err := nsLabels()
		if err != nil {
			return false, err
		}
		return s.Matches(labels.Set(l)), nil
	default:
		return r.Namespace == ns, nil
	}
}
