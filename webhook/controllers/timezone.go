package controllers

import "time"

// inTimeZone is t in the IANA zone tz, as the CronJob controller reads a schedule with
// spec.timeZone (so that status.nextScheduleTime says the same instant); t in UTC without a
// zone or with one unknown here (admission refuses those).
func inTimeZone(t time.Time, tz string) time.Time {
	if tz == "" {
		return t.UTC()
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return t.UTC()
	}
	return t.In(loc)
}
