package v1alpha1

import (
	"reflect"
	"strings"
	"testing"
)

// Every *int32 field of RetentionPolicy is a keep rule, and Rules lists each once: a rule added
// to the type but not to Rules would be ignored by validation, the flags and forget.
func TestRetentionRulesCoverThePolicy(t *testing.T) {
	var p RetentionPolicy
	rules := p.Rules()
	byField := map[string]RetentionRule{}
	for _, r := range rules {
		if _, dup := byField[r.Field]; dup {
			t.Errorf("rule %s listed twice", r.Field)
		}
		byField[r.Field] = r
		if r.Flag == "" || r.Help == "" || !strings.HasPrefix(r.Flag, "keep-") {
			t.Errorf("rule %s: flag %q, help %q", r.Field, r.Flag, r.Help)
		}
	}
	typ := reflect.TypeOf(p)
	n := 0
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Type != reflect.TypeOf((*int32)(nil)) {
			continue
		}
		n++
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		r, ok := byField[name]
		if !ok {
			t.Errorf("field %s (%s) has no rule", f.Name, name)
			continue
		}
		// Set writes this very field, Value reads it.
		r.Set(int32(10 + i))
		got := reflect.ValueOf(p).Field(i).Interface().(*int32)
		if got == nil || *got != int32(10+i) || r.Value() != got {
			t.Errorf("rule %s does not read and write field %s", r.Field, f.Name)
		}
	}
	if n != len(rules) {
		t.Errorf("%d keep fields, %d rules", n, len(rules))
	}
}
