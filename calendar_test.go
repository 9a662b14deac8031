package sluice

import (
	"strings"
	"testing"
	"time"
)

// The 2026 National Day holiday: 1–7 October off, Sunday 27 September and
// Saturday 10 October worked instead (调休).
var nationalDay = CalendarConfig{
	TimeZone: "Asia/Shanghai",
	Holidays: []string{"2026-10-01", "2026-10-02", "2026-10-03", "2026-10-04", "2026-10-05", "2026-10-06", "2026-10-07"},
	Workdays: []string{"2026-09-27", "2026-10-10"},
}

func TestCalendarDeadlines(t *testing.T) {
	cal, err := NewCalendar(nationalDay)
	if err != nil {
		t.Fatal(err)
	}
	sh := cal.Location()
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, sh)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	endOf := func(day string) time.Time {
		return at(day+" 00:00").AddDate(0, 0, 1).Add(-time.Nanosecond)
	}
	cases := []struct {
		name     string
		from     string
		days     int
		wantDay  string
		workdays bool
	}{
		{"ordinary week", "2026-11-16 10:00", 3, "2026-11-19", true},
		{"over a weekend", "2026-11-19 16:00", 3, "2026-11-24", true},
		{"submitted on a Saturday", "2026-11-21 09:00", 3, "2026-11-25", true},
		{"make-up Sunday counts", "2026-09-25 09:00", 1, "2026-09-27", true},
		{"across the National Day holiday", "2026-09-29 11:00", 3, "2026-10-09", true},
		{"make-up Saturday counts", "2026-09-30 11:00", 2, "2026-10-09", true},
		{"ten days across the holiday", "2026-09-28 09:00", 10, "2026-10-16", true},
		{"late evening still the same day", "2026-11-16 23:59", 3, "2026-11-19", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := cal.Deadline(at(tc.from), tc.days)
			if want := endOf(tc.wantDay); !got.Equal(want) {
				t.Errorf("Deadline(%s, %d) = %s, want end of %s", tc.from, tc.days, got.In(sh), tc.wantDay)
			}
		})
	}
	// The same instant given in UTC counts days in the calendar's zone:
	// 2026-11-19 17:00 UTC is already Friday 20th in Shanghai.
	if got, want := cal.Deadline(time.Date(2026, 11, 19, 17, 0, 0, 0, time.UTC), 1), endOf("2026-11-23"); !got.Equal(want) {
		t.Errorf("UTC input: got %s, want %s", got.In(sh), want)
	}
}

func TestCalendarWorkingDays(t *testing.T) {
	cal, err := NewCalendar(nationalDay)
	if err != nil {
		t.Fatal(err)
	}
	sh := cal.Location()
	day := func(s string) time.Time {
		v, _ := time.ParseInLocation(time.DateOnly, s, sh)
		return v.Add(12 * time.Hour)
	}
	for d, want := range map[string]bool{
		"2026-10-01": false, "2026-10-07": false, "2026-10-08": true, "2026-10-10": true, "2026-10-11": false,
		"2026-09-27": true, "2026-09-26": false, "2026-11-23": true, "2026-11-22": false,
	} {
		if got := cal.IsWorkingDay(day(d)); got != want {
			t.Errorf("IsWorkingDay(%s) = %v, want %v", d, got, want)
		}
	}
	due := cal.Deadline(day("2026-09-29"), 3) // end of 9 October
	for _, tc := range []struct {
		now  string
		late int
	}{{"2026-10-09", 0}, {"2026-10-10", 1}, {"2026-10-11", 1}, {"2026-10-12", 2}, {"2026-10-16", 6}} {
		if got := cal.WorkingDaysLate(due, day(tc.now)); got != tc.late {
			t.Errorf("WorkingDaysLate(due 2026-10-09, now %s) = %d, want %d", tc.now, got, tc.late)
		}
	}
}

func TestCalendarConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		cfg  CalendarConfig
		want string
	}{
		{"bad zone", CalendarConfig{TimeZone: "Mars/Olympus"}, "time zone"},
		{"bad holiday", CalendarConfig{Holidays: []string{"1 Oct"}}, "calendar.holidays[0]"},
		{"bad workday", CalendarConfig{Workdays: []string{"2026-13-01"}}, "calendar.workdays[0]"},
		{"both", CalendarConfig{Holidays: []string{"2026-10-10"}, Workdays: []string{"2026-10-10"}}, "both"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewCalendar(tc.cfg)
			if err == nil || ErrorCode(err) != EInvalid || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an invalid error mentioning %q", err, tc.want)
			}
		})
	}
}
