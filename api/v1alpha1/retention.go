package v1alpha1

// RetentionRule is one keep-* rule of a RetentionPolicy. RetentionPolicy.Rules is the one
// list of the rules: validation, the flags of `kubectl stash create backupconfig` and of
// `stash-runner forget`, `kubectl stash backup describe` and the runner's forget all iterate
// over it, so a new rule is added to the type and to Rules and nowhere else.
//
// +kubebuilder:object:generate=false
type RetentionRule struct {
	// Field is the rule's field in the API ("keepLast"), for field paths and messages.
	Field string
	// Flag is the rule's command-line flag in kubectl stash and stash-runner ("keep-last").
	Flag string
	// Help says what the rule keeps, for the flags' help.
	Help string
	// Period is the span of time the rule keeps one snapshot of; PeriodNone for the newest N.
	// It is what the runner's forget reads (repo.PolicyOf), so it needs no table of names.
	Period RetentionPeriod

	value **int32 // the field of the policy Rules was called on
}

// RetentionPeriod is the span of time of which a retention rule keeps the newest snapshot.
type RetentionPeriod string

// Retention periods.
const (
	PeriodNone  RetentionPeriod = "" // the newest N snapshots, whatever their time
	PeriodHour  RetentionPeriod = "hour"
	PeriodDay   RetentionPeriod = "day"
	PeriodWeek  RetentionPeriod = "week"
	PeriodMonth RetentionPeriod = "month"
	PeriodYear  RetentionPeriod = "year"
)

// Value is the rule's value in the policy; nil when the rule is not set.
func (r RetentionRule) Value() *int32 { return *r.value }

// CheckValue says what is wrong with n as the rule's value, or "" when nothing is. It is the
// one rule for admission and for the runner's --keep-* flags: a negative count would keep
// nothing and so remove every snapshot.
func (r RetentionRule) CheckValue(n int32) string {
	if n < 0 {
		return "must be greater than or equal to 0"
	}
	return ""
}

// Set sets the rule's value in the policy that Rules was called on.
func (r RetentionRule) Set(n int32) { *r.value = &n }

// Rules lists the policy's keep-* rules, always all six and in this order: last, hourly,
// daily, weekly, monthly, yearly. Each reads and writes the policy's own field.
func (p *RetentionPolicy) Rules() []RetentionRule {
	return []RetentionRule{
		{Field: "keepLast", Flag: "keep-last", Help: "keep the newest N snapshots", value: &p.KeepLast},
		{Field: "keepHourly", Flag: "keep-hourly", Help: "keep the newest snapshot of each of the last N hours that have one", Period: PeriodHour, value: &p.KeepHourly},
		{Field: "keepDaily", Flag: "keep-daily", Help: "keep the newest snapshot of each of the last N days that have one", Period: PeriodDay, value: &p.KeepDaily},
		{Field: "keepWeekly", Flag: "keep-weekly", Help: "keep the newest snapshot of each of the last N weeks that have one", Period: PeriodWeek, value: &p.KeepWeekly},
		{Field: "keepMonthly", Flag: "keep-monthly", Help: "keep the newest snapshot of each of the last N months that have one", Period: PeriodMonth, value: &p.KeepMonthly},
		{Field: "keepYearly", Flag: "keep-yearly", Help: "keep the newest snapshot of each of the last N years that have one", Period: PeriodYear, value: &p.KeepYearly},
	}
}
