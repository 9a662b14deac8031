package sluice

import (
	"fmt"
	"sort"
	"time"
)

// Calendar decides which days are working days: Monday to Friday, minus
// public holidays, plus make-up working days (调休上班) that fall on a
// weekend. Review deadlines (3 working days for the platform, 10 for the
// provider) are counted on it.
type Calendar struct {
	loc      *time.Location
	holidays map[string]bool // YYYY-MM-DD
	workdays map[string]bool // YYYY-MM-DD, make-up working days
}

// CalendarConfig is how a calendar is written in the broker's
// configuration.
type CalendarConfig struct {
	// TimeZone is the IANA zone days are counted in (default Asia/Shanghai).
	TimeZone string `yaml:"time_zone" json:"time_zone,omitempty"`
	// Holidays are dates (YYYY-MM-DD) that are not working days.
	Holidays []string `yaml:"holidays" json:"holidays,omitempty"`
	// Workdays are weekend dates (YYYY-MM-DD) that are working days.
	Workdays []string `yaml:"workdays" json:"workdays,omitempty"`
}

// DefaultTimeZone is the zone the platform's days are counted in.
const DefaultTimeZone = "Asia/Shanghai"

// NewCalendar validates a calendar configuration. A date may not be both a
// holiday and a make-up working day.
func NewCalendar(c CalendarConfig) (*Calendar, error) {
	zone := c.TimeZone
	if zone == "" {
		zone = DefaultTimeZone
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, Errorf(EInvalid, "calendar.time_zone: %q is not a known time zone (use an IANA name such as Asia/Shanghai)", zone)
	}
	cal := &Calendar{loc: loc, holidays: map[string]bool{}, workdays: map[string]bool{}}
	for field, list := range map[string][]string{"holidays": c.Holidays, "workdays": c.Workdays} {
		for i, d := range list {
			if _, err := time.Parse(time.DateOnly, d); err != nil {
				return nil, Errorf(EInvalid, "calendar.%s[%d]: %q is not a date; write YYYY-MM-DD", field, i, d)
			}
			if field == "holidays" {
				cal.holidays[d] = true
			} else {
				cal.workdays[d] = true
			}
		}
	}
	for d := range cal.workdays {
		if cal.holidays[d] {
			return nil, Errorf(EInvalid, "calendar: %s is listed both as a holiday and as a make-up working day", d)
		}
	}
	return cal, nil
}

// Location is the zone days are counted in.
func (c *Calendar) Location() *time.Location { return c.loc }

// IsWorkingDay reports whether the day t falls on (in the calendar's zone)
// is a working day.
func (c *Calendar) IsWorkingDay(t time.Time) bool {
	day := t.In(c.loc)
	key := day.Format(time.DateOnly)
	if c.workdays[key] {
		return true
	}
	if c.holidays[key] {
		return false
	}
	wd := day.Weekday()
	return wd != time.Saturday && wd != time.Sunday
}

// Deadline is the end of the n-th working day after the day of t: the day
// something arrives does not count, as in "answer within 3 working days".
func (c *Calendar) Deadline(t time.Time, n int) time.Time {
	day := t.In(c.loc)
	day = time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, c.loc)
	for n > 0 {
		day = day.AddDate(0, 0, 1)
		if c.IsWorkingDay(day) {
			n--
		}
	}
	// The deadline is the last instant of that day.
	return day.AddDate(0, 0, 1).Add(-time.Nanosecond)
}

// WorkingDaysLate counts the working days after deadline up to now (0 when
// now is not past it).
func (c *Calendar) WorkingDaysLate(deadline, now time.Time) int {
	if !now.After(deadline) {
		return 0
	}
	n := 0
	day := deadline.In(c.loc).Add(time.Nanosecond) // the day after the deadline's day
	for !day.After(now) {
		if c.IsWorkingDay(day) {
			n++
		}
		day = day.AddDate(0, 0, 1)
	}
	return n
}

// Holidays lists the configured holidays, sorted (for display).
func (c *Calendar) Holidays() []string { return sortedKeys(c.holidays) }

// Workdays lists the configured make-up working days, sorted.
func (c *Calendar) Workdays() []string { return sortedKeys(c.workdays) }

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// String describes the calendar briefly.
func (c *Calendar) String() string {
	return fmt.Sprintf("calendar %s: %d holidays, %d make-up working days", c.loc, len(c.holidays), len(c.workdays))
}
